"""Transports: how one request reaches a GPU (see :mod:`ocrclient.transports.base`)."""

from .base import Health, ModelReply, ModelRequest, Transport

__all__ = ["Health", "ModelReply", "ModelRequest", "Transport"]

"""The embedded OCR engine (RapidOCR) and the layout built from its lines."""

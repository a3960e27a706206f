"""The HTML viewer's static parts: the page template, the stylesheet, the script, and the
numbers they share (block colours, the fixed layout).  :mod:`ocrclient.exporters.html` fills the
template with a Document.

The template is Jinja2 with autoescape on: every value put into it (model text, labels, file
names, error messages: all untrusted) is escaped in text and in attributes; only the stylesheet
and the script below, constants of this module, are inserted as they are.  Its line breaks and
indentation are for reading and are removed before it is compiled (:data:`TEMPLATE`), so the
page holds no whitespace between elements.

The script adds no inline event handlers and runs under the page's nonce; it only reads the
``data-*`` attributes the template escaped, and puts block text in the side panel through
``textContent``.
"""

from __future__ import annotations

__all__ = [
    "CSS",
    "FIXED_HEAD_TOP",
    "FIXED_SHEET_LEFT",
    "FIXED_SHEET_TOP",
    "FIXED_SHEET_WIDTH",
    "JS",
    "TEMPLATE",
    "TYPE_COLORS",
    "stylesheet",
]

#: fixed layout (``?fixed=1``): where the current page sits in the window, in CSS pixels
FIXED_SHEET_LEFT = 220
FIXED_SHEET_TOP = 170
FIXED_SHEET_WIDTH = 640
#: top of the page heading (status + error banner) in the fixed layout
FIXED_HEAD_TOP = 92

#: block type -> border color (the legend shows the types a document uses)
TYPE_COLORS: dict[str, str] = {
    "title": "#e6194b",
    "section_header": "#f58231",
    "text": "#4363d8",
    "list_item": "#3cb44b",
    "table": "#911eb4",
    "figure": "#f032e6",
    "caption": "#008080",
    "equation": "#9a6324",
    "code": "#808000",
    "footnote": "#800000",
    "page_header": "#469990",
    "page_footer": "#000075",
    "form": "#a0c000",
    "handwriting": "#00a5c8",
    "line": "#8c8c8c",
    "word": "#d4a000",
    "other": "#505050",
}

_RAW_TEMPLATE = """
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{{ csp }}">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{{ name }} — ocrclient viewer</title><style>{{ css }}</style></head>
<body>
  <header><h1>{{ name }}</h1><span class="meta">{{ meta }}</span></header>
  <div id="layout">
    <nav aria-label="pages">{% for p in doc.pages %}
      <a href="?page={{ p.page }}" data-page="{{ p.page }}" class="nav-{{ p.status }}">Page {{ p.page }}{#
      #}<span class="st st-{{ p.status }}">{{ p.status }}</span></a>
    {% endfor %}</nav>
    <main>
      <div class="toolbar"><button id="prev" type="button" title="previous page (←)">◀ Prev</button><span id="pos"></span>
        <button id="next" type="button" title="next page (→)">Next ▶</button>
        <label><input type="checkbox" id="lines"> lines &amp; words</label></div>
      {% for p in doc.pages %}{% set w, h = size(p) %}
        <section class="page status-{{ p.status }}" id="page-{{ p.page }}" data-page="{{ p.page }}" {#
        #}data-width="{{ w }}" data-height="{{ h }}">
          <div class="pagehead"><h2>Page {{ p.page }} <span class="st st-{{ p.status }}">{{ p.status }}</span></h2>
            {% if p.status == "failed" %}<div class="banner failed" role="alert"><b>Page {{ p.page }} failed</b> — {#
              #}{% if p.error %}{{ p.error.kind }}{{ "/" ~ p.error.cause if p.error.cause }}: {{ p.error.message }}{#
              #}{% else %}no reason recorded{% endif %}</div>
            {% elif p.status == "degraded" %}<div class="banner degraded" role="status"><b>Page {{ p.page }} degraded</b> — {#
              #}{{ p.warnings | join("; ") or (p.error.message if p.error else "no details recorded") }}</div>
            {% elif p.warnings %}<div class="banner degraded" role="status">{{ p.warnings | join("; ") }}</div>{% endif %}
          </div>
          <div class="sheet" style="aspect-ratio:{{ w }} / {{ h }}">
            {% if p.page in images %}<img class="scan" alt="page {{ p.page }}" src="{{ images[p.page] }}">
            {% else %}<div class="blank"><p>{{ missing.get(p.page, "page image not available") }}</p></div>{% endif %}
            {% for box in boxes(p) %}<div{{ box | xmlattr }}></div>{% endfor %}
          </div>
          <template class="info"><dl>
            <dt>status</dt><dd>{{ p.status }}</dd><dt>size (pt)</dt><dd>{{ "%g × %g" | format(p.width, p.height) }}</dd>
            <dt>rotation</dt><dd>{{ p.rotation }}</dd><dt>blocks</dt><dd>{{ p.blocks | length }}</dd>
            <dt>attempts</dt><dd>{{ p.attempts }}</dd><dt>latency</dt><dd>{{ "%.2f s" | format(p.latency_s) }}</dd>
            {% if p.usage.prompt_tokens or p.usage.completion_tokens %}<dt>tokens</dt>{#
            #}<dd>{{ p.usage.prompt_tokens }} in / {{ p.usage.completion_tokens }} out</dd>{% endif %}
            {% if p.usage.cost_usd is not none %}<dt>cost</dt><dd>{{ "$%.5f" | format(p.usage.cost_usd) }}</dd>{% endif %}
            {% if p.cached %}<dt>cached</dt><dd>yes</dd>{% endif %}</dl>
            {% if p.markdown %}<details><summary>page markdown</summary><pre>{{ p.markdown }}</pre></details>{% endif %}
          </template>
        </section>
      {% else %}<p>This document has no pages.</p>{% endfor %}
    </main>
    <aside><h2>Legend</h2><div class="legend">{% for kind, count in legend %}
      <span class="t-{{ kind }}"><i></i>{{ kind }} <span class="muted">{{ count }}</span></span>
      {% else %}<span class=muted>no blocks</span>{% endfor %}</div>
      <h2>Block</h2><div id="block"><p class="muted">Click a box to see its block.</p></div>
      <h2>Page</h2><div id="pageinfo"></div>
      <h2>Document</h2><dl><dt>source</dt><dd>{{ doc.source }}</dd><dt>backend</dt><dd>{{ doc.backend }}</dd>
        <dt>model</dt><dd>{{ doc.model or "" }}</dd><dt>schema</dt><dd>{{ doc.schema_version }}</dd></dl></aside>
  </div>
  <script nonce="{{ nonce }}">{{ js }}</script>
</body></html>
"""

#: the viewer page (Jinja2, autoescaped): :data:`_RAW_TEMPLATE` without its line breaks and
#: indentation (a space that ends a line is kept with a comment after it: ``{# #}``)
TEMPLATE = "".join(line.strip() for line in _RAW_TEMPLATE.splitlines()) + "\n"

CSS = """
*{box-sizing:border-box}
html,body{margin:0;height:100%}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#e9eaee}
header{height:48px;display:flex;align-items:center;gap:16px;padding:0 16px;background:#1f2430;color:#fff;overflow:hidden;white-space:nowrap}
header h1{font-size:16px;margin:0;overflow:hidden;text-overflow:ellipsis}
header .meta{color:#b8bfcc;font-size:12px;overflow:hidden;text-overflow:ellipsis}
#layout{display:flex;height:calc(100% - 48px)}
nav{width:190px;flex:none;overflow-y:auto;background:#f7f7f9;border-right:1px solid #d0d3da;padding:8px}
nav a{display:flex;justify-content:space-between;padding:4px 8px;border-radius:4px;color:#1d1d1f;text-decoration:none}
nav a:hover{background:#e3e6ec}
nav a.current{background:#1f2430;color:#fff}
nav .st{font-size:11px;padding:0 6px;border-radius:8px}
.st-failed{background:#c62828;color:#fff}
.st-degraded{background:#f0a000;color:#000}
.st-ok{background:#d5ecd9;color:#225c2c}
main{flex:1;overflow:auto;padding:16px 24px}
aside{width:340px;flex:none;overflow-y:auto;background:#fff;border-left:1px solid #d0d3da;padding:12px 14px}
aside h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#666;margin:14px 0 6px}
.toolbar{display:flex;gap:8px;align-items:center;margin-bottom:8px}
.toolbar button{font:inherit;padding:3px 10px}
.page{margin:0 auto 28px;max-width:1000px}
.pagehead{min-height:30px;margin-bottom:6px}
.pagehead h2{font-size:15px;margin:0 0 4px}
.banner{padding:6px 10px;border-radius:4px;margin:4px 0;white-space:pre-wrap;word-break:break-word}
.banner.failed{background:#fdecea;border:1px solid #c62828;color:#8e1b1b}
.banner.degraded{background:#fff6e0;border:1px solid #f0a000;color:#6b4a00}
.sheet{position:relative;width:100%;background:#fff;box-shadow:0 1px 4px rgba(0,0,0,.25);overflow:hidden}
.sheet img.scan{position:absolute;left:0;top:0;width:100%;height:100%;display:block;user-select:none}
.blank{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;color:#888;text-align:center;padding:20px;background:repeating-linear-gradient(45deg,#fff,#fff 12px,#f6f6f6 12px,#f6f6f6 24px)}
.box{position:absolute;border:2px solid var(--c);background:var(--f);cursor:pointer}
.box:hover{background:rgba(255,255,0,.18)}
.box.sel{outline:3px solid #000;outline-offset:1px}
.box.child{display:none;border-width:1px}
body.lines .box.child{display:block}
body.js .page{display:none}
body.js .page.current{display:block}
.legend{display:flex;flex-wrap:wrap;gap:4px 10px}
.legend span{display:inline-flex;align-items:center;gap:4px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;border:2px solid var(--c);background:var(--f)}
pre{white-space:pre-wrap;word-break:break-word;background:#f5f6f8;padding:8px;border-radius:4px;margin:4px 0;font-size:12px}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:0;font-size:12px}
dt{color:#666}
dd{margin:0;word-break:break-word}
.muted{color:#888}
body.fixed main{overflow:hidden;padding:0}
body.fixed .page.current{position:fixed;left:__LEFT__px;top:__TOP__px;width:__WIDTH__px;max-width:none;margin:0}
body.fixed .pagehead{position:fixed;left:__LEFT__px;top:__HEADTOP__px;width:__WIDTH__px;height:__HEADH__px;overflow:hidden;min-height:0;margin:0}
body.fixed .toolbar{position:fixed;left:__LEFT__px;top:56px;margin:0}
"""

JS = r"""
(function(){
  var body=document.body, pages=[].slice.call(document.querySelectorAll('.page')),
      links=[].slice.call(document.querySelectorAll('nav a[data-page]')), cur=0;
  body.classList.add('js');
  var q=new URLSearchParams(location.search);
  if(q.get('fixed')==='1') body.classList.add('fixed');
  var lines=document.getElementById('lines');
  if(q.get('lines')==='1'){ body.classList.add('lines'); lines.checked=true; }
  lines.addEventListener('change',function(){ body.classList.toggle('lines',lines.checked); });
  function show(i){
    if(!pages.length) return;
    cur=Math.max(0,Math.min(pages.length-1,i));
    pages.forEach(function(p,j){ p.classList.toggle('current',j===cur); });
    links.forEach(function(a,j){ a.classList.toggle('current',j===cur); });
    document.getElementById('pos').textContent=(cur+1)+' / '+pages.length;
    var info=document.getElementById('pageinfo'), src=pages[cur].querySelector('.info');
    info.textContent=''; if(src) info.appendChild(src.content.cloneNode(true));
    select(null);
    if(links[cur] && links[cur].scrollIntoView && !body.classList.contains('fixed')) links[cur].scrollIntoView({block:'nearest'});
    try{ q.set('page',String(cur+1)); history.replaceState(null,'','?'+q.toString()); }catch(e){}
  }
  function field(dl,name,value){
    if(value===undefined||value===null||value==='') return;
    var dt=document.createElement('dt'), dd=document.createElement('dd');
    dt.textContent=name; dd.textContent=value; dl.appendChild(dt); dl.appendChild(dd);
  }
  var selected=null;
  function select(el){
    if(selected) selected.classList.remove('sel');
    selected=el;
    var panel=document.getElementById('block');
    panel.textContent='';
    if(!el){ var p=document.createElement('p'); p.className='muted'; p.textContent='Click a box to see its block.'; panel.appendChild(p); return; }
    el.classList.add('sel');
    var d=el.dataset, dl=document.createElement('dl');
    field(dl,'type',d.type); field(dl,'label',d.label); field(dl,'confidence',d.conf);
    field(dl,'bbox (pt)',d.bbox); field(dl,'bbox_norm',d.norm); field(dl,'flags',d.flags);
    field(dl,'path',d.path);
    panel.appendChild(dl);
    var pre=document.createElement('pre'); pre.textContent=d.text||''; panel.appendChild(pre);
  }
  document.addEventListener('click',function(ev){
    var t=ev.target;
    if(t.closest){
      var box=t.closest('.box'); if(box){ select(box); ev.preventDefault(); return; }
      var a=t.closest('nav a[data-page]');
      if(a){ show(links.indexOf(a)); ev.preventDefault(); return; }
    }
  });
  document.getElementById('prev').addEventListener('click',function(){ show(cur-1); });
  document.getElementById('next').addEventListener('click',function(){ show(cur+1); });
  document.addEventListener('keydown',function(ev){
    var tag=(ev.target&&ev.target.tagName)||'';
    if(tag==='INPUT'||tag==='TEXTAREA'||ev.altKey||ev.ctrlKey||ev.metaKey) return;
    var k=ev.key;
    if(k==='ArrowRight'||k==='PageDown'){ show(cur+1); ev.preventDefault(); }
    else if(k==='ArrowLeft'||k==='PageUp'){ show(cur-1); ev.preventDefault(); }
    else if(k==='Home'){ show(0); ev.preventDefault(); }
    else if(k==='End'){ show(pages.length-1); ev.preventDefault(); }
    else if(k==='Escape'){ select(null); }
  });
  var start=parseInt(q.get('page')||'1',10);
  show(isNaN(start)?0:start-1);
  var want=q.get('block');
  if(want!==null && pages.length){
    var boxes=pages[cur].querySelectorAll('.box');
    for(var i=0;i<boxes.length;i++){ if(boxes[i].dataset.path===want){ select(boxes[i]); break; } }
  }
})();
"""


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def stylesheet() -> str:
    """:data:`CSS` with the fixed layout's numbers filled in and a colour rule per block type."""
    rules = []
    for kind, color in TYPE_COLORS.items():
        r, g, b = _rgb(color)
        rules.append(f".t-{kind}{{--c:{color};--f:rgba({r},{g},{b},.07)}}")
    return (
        (CSS + "\n".join(rules))
        .replace("__LEFT__", str(FIXED_SHEET_LEFT))
        .replace("__TOP__", str(FIXED_SHEET_TOP))
        .replace("__WIDTH__", str(FIXED_SHEET_WIDTH))
        .replace("__HEADTOP__", str(FIXED_HEAD_TOP))
        .replace("__HEADH__", str(FIXED_SHEET_TOP - FIXED_HEAD_TOP - 4))
    )

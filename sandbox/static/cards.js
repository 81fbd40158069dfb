/* Card JSON 2.0 renderer for the sandbox page. Plain JS, no dependencies.
 *
 * SandboxCards.render(card, ctx) -> HTMLElement
 *   ctx.members   {open_id: {name, dept}}     for <at>, person and person pickers
 *   ctx.bot       {open_id, name}
 *   ctx.texts     page labels (from the server)
 *   ctx.tzOffset  "+0800": what Feishu appends to picker values
 *   ctx.onAction(action) -> Promise          sends a card callback ({tag, value, name, form_value, ...})
 *   ctx.toast(text, type)
 *
 * Anything this renderer does not know is shown as a visible "[不支持的组件: tag]" placeholder,
 * never dropped, so the sandbox cannot hide a card that Feishu would render.
 * All text goes into the DOM as text nodes (never innerHTML).
 */
(function () {
  "use strict";

  var TAG_COLORS = ["neutral", "blue", "turquoise", "lime", "orange", "violet", "indigo", "wathet",
    "green", "yellow", "red", "purple", "carmine", "grey"];
  var FONT_COLORS = ["red", "green", "grey", "gray", "blue", "orange", "yellow", "purple", "violet",
    "indigo", "carmine", "turquoise", "wathet", "lime", "default"];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmt(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (_m, k) {
      return values[k] !== undefined ? values[k] : "{" + k + "}";
    });
  }

  function unsupported(ctx, tag) {
    var box = el("div", "unsupported", fmt(ctx.texts.unsupported, {tag: tag}));
    box.setAttribute("data-unsupported", tag);
    return box;
  }

  function unsupportedInline(ctx, what) {
    var s = el("span", "unsupported inline", fmt(ctx.texts.unsupported_markdown, {what: what}));
    s.setAttribute("data-unsupported", what);
    return s;
  }

  function personName(ctx, id) {
    if (!id) return ctx.texts.unknown_user;
    if (id === "all") return ctx.texts.at_all;
    if (ctx.bot && id === ctx.bot.open_id) return ctx.bot.name;
    var m = ctx.members[id];
    return m ? m.name : ctx.texts.unknown_user + "(" + id + ")";
  }

  function mention(ctx, id) {
    var s = el("span", "mention", "@" + personName(ctx, id));
    s.setAttribute("data-open-id", id);
    return s;
  }

  function personChip(ctx, id) {
    var s = el("span", "person-chip");
    var name = personName(ctx, id);
    s.appendChild(el("span", "avatar small", name.slice(0, 1)));
    s.appendChild(el("span", "person-name", name));
    s.setAttribute("data-open-id", id);
    return s;
  }

  function colorClass(prefix, color, allowed) {
    color = String(color || "").toLowerCase();
    return allowed.indexOf(color) >= 0 ? prefix + color : "";
  }

  // ------------------------------------------------------------------ markdown (inline)
  var ENTITY = /^&(#\d+|#x[0-9a-f]+|amp|lt|gt|quot|apos|nbsp);/i;

  function decodeEntity(name) {
    var named = {amp: "&", lt: "<", gt: ">", quot: "\"", apos: "'", nbsp: "\u00a0"};
    var low = name.toLowerCase();
    if (named[low]) return named[low];
    var code = low.charAt(1) === "x" ? parseInt(low.slice(2), 16) : parseInt(low.slice(1), 10);
    try { return String.fromCodePoint(code); } catch (e) { return "&" + name + ";"; }
  }

  function attrs(s) {
    var out = {};
    var re = /([\w-]+)\s*=\s*(?:'([^']*)'|"([^"]*)"|([^\s>'"]+))/g;
    var m;
    while ((m = re.exec(s)) !== null) out[m[1].toLowerCase()] = m[2] !== undefined ? m[2] : (m[3] !== undefined ? m[3] : m[4]);
    return out;
  }

  function safeUrl(url) {
    return /^(https?:|mailto:|lark:|feishu:)/i.test(url) ? url : null;
  }

  function pad2(n) { return (n < 10 ? "0" : "") + n; }

  function formatDate(ms, format) {
    var d = new Date(Number(ms));
    if (isNaN(d.getTime())) return String(ms);
    format = format || "YYYY/MM/DD";
    return format.replace("YYYY", d.getFullYear()).replace("MM", pad2(d.getMonth() + 1))
      .replace("DD", pad2(d.getDate())).replace("HH", pad2(d.getHours())).replace("mm", pad2(d.getMinutes()));
  }

  // Paired inline tags: find the matching close tag (same-name nesting counted).
  function findClose(src, from, name) {
    var depth = 1, i = from;
    var open = new RegExp("<" + name + "\\b[^>]*>", "ig"), close = new RegExp("</" + name + "\\s*>", "ig");
    while (true) {
      open.lastIndex = i; close.lastIndex = i;
      var o = open.exec(src), c = close.exec(src);
      if (!c) return null;
      if (o && o.index < c.index) { depth++; i = o.index + o[0].length; continue; }
      depth--;
      if (depth === 0) return {start: c.index, end: c.index + c[0].length};
      i = c.index + c[0].length;
    }
  }

  function inline(src, ctx) {
    var frag = document.createDocumentFragment();
    var buf = "";
    var i = 0;
    function flush() { if (buf) { frag.appendChild(document.createTextNode(buf)); buf = ""; } }
    function wrap(tag, cls, inner) { flush(); var e = el(tag, cls); e.appendChild(inline(inner, ctx)); frag.appendChild(e); }
    while (i < src.length) {
      var rest = src.slice(i);
      var ch = rest.charAt(0);
      var m, j;
      if (ch === "&" && (m = rest.match(ENTITY))) { buf += decodeEntity(m[1]); i += m[0].length; continue; }
      if (ch === "\n") { flush(); frag.appendChild(document.createElement("br")); i++; continue; }
      if (ch === "\\" && rest.length > 1 && "*_~`[]()#<>!:\\|".indexOf(rest.charAt(1)) >= 0) { buf += rest.charAt(1); i += 2; continue; }
      if (rest.slice(0, 2) === "**" && (j = src.indexOf("**", i + 2)) > i + 2) { wrap("strong", "", src.slice(i + 2, j)); i = j + 2; continue; }
      if (rest.slice(0, 2) === "~~" && (j = src.indexOf("~~", i + 2)) > i + 2) { wrap("del", "", src.slice(i + 2, j)); i = j + 2; continue; }
      if (ch === "*" && rest.charAt(1) !== "*" && rest.charAt(1) !== " " && (j = src.indexOf("*", i + 1)) > i + 1) {
        wrap("em", "", src.slice(i + 1, j)); i = j + 1; continue;
      }
      if (ch === "`" && (j = src.indexOf("`", i + 1)) > i) { flush(); frag.appendChild(el("code", "", src.slice(i + 1, j))); i = j + 1; continue; }
      if (ch === "!" && (m = rest.match(/^!\[([^\]]*)\]\(([^)\s]*)\)/))) { flush(); frag.appendChild(unsupportedInline(ctx, "img " + m[2])); i += m[0].length; continue; }
      if (ch === "[" && (m = rest.match(/^\[([^\]]*)\]\(([^)\s]+)\)/))) {
        flush();
        var url = safeUrl(m[2]);
        var a = el(url ? "a" : "span", "link");
        if (url) { a.href = url; a.target = "_blank"; a.rel = "noopener noreferrer"; }
        a.appendChild(inline(m[1], ctx));
        frag.appendChild(a);
        i += m[0].length; continue;
      }
      if (ch === ":" && (m = rest.match(/^:([A-Za-z][A-Za-z0-9_]{1,30}):/))) { flush(); frag.appendChild(unsupportedInline(ctx, ":" + m[1] + ":")); i += m[0].length; continue; }
      if (ch === "<" && (m = rest.match(/^<(\/?)([a-z_]+)((?:\s[^<>]*)?)\/?>/i))) {
        var name = m[2].toLowerCase(), at = attrs(m[3] || ""), after = i + m[0].length, close;
        if (m[1]) { i = after; continue; }  // a stray closing tag: Feishu ignores it
        if (name === "br") { flush(); frag.appendChild(document.createElement("br")); i = after; continue; }
        if (name === "at") {
          flush();
          var ids = at.ids ? at.ids.split(",") : [at.id || at.email || ""];
          ids.forEach(function (id) { frag.appendChild(id.indexOf("@") > 0 ? el("span", "mention", "@" + id) : mention(ctx, id.trim())); });
          close = src.slice(after).match(/^[^<]*<\/at\s*>/i);
          i = after + (close ? close[0].length : 0); continue;
        }
        if (name === "person") {
          flush(); frag.appendChild(personChip(ctx, at.id || ""));
          close = src.slice(after).match(/^[^<]*<\/person\s*>/i);
          i = after + (close ? close[0].length : 0); continue;
        }
        if (name === "local_datetime") {
          flush(); frag.appendChild(el("span", "datetime", formatDate(at.millisecond || Date.now(), "YYYY-MM-DD HH:mm")));
          close = src.slice(after).match(/^[^<]*<\/local_datetime\s*>/i);
          i = after + (close ? close[0].length : 0); continue;
        }
        if (["font", "text_tag", "link", "number_tag"].indexOf(name) >= 0 && (close = findClose(src, after, name))) {
          var inner = src.slice(after, close.start);
          flush();
          var span;
          if (name === "font") { span = el("span", colorClass("fc-", at.color, FONT_COLORS)); span.appendChild(inline(inner, ctx)); }
          else if (name === "text_tag") { span = el("span", "tag " + colorClass("tag-", at.color || "neutral", TAG_COLORS)); span.appendChild(inline(inner, ctx)); }
          else if (name === "number_tag") { span = el("span", "number-tag"); span.appendChild(inline(inner, ctx)); }
          else { var u = safeUrl(at.url || ""); span = el(u ? "a" : "span", "link"); if (u) { span.href = u; span.target = "_blank"; span.rel = "noopener noreferrer"; } span.appendChild(inline(inner, ctx)); }
          frag.appendChild(span);
          i = close.end; continue;
        }
        if (["hr", "img", "font", "text_tag", "link", "number_tag"].indexOf(name) < 0) { buf += m[0]; i = after; continue; }  // not markup: literal
        flush(); frag.appendChild(unsupportedInline(ctx, "<" + name + ">")); i = after; continue;
      }
      buf += ch; i++;
    }
    flush();
    return frag;
  }

  // ------------------------------------------------------------------ markdown (blocks)
  function markdownBlocks(src, ctx) {
    var root = el("div", "md");
    var lines = String(src || "").replace(/\r\n?/g, "\n").split("\n");
    var para = null;
    var listStack = [];  // [{indent, el}]
    function endPara() { para = null; }
    function endLists() { listStack = []; }
    for (var k = 0; k < lines.length; k++) {
      var line = lines[k];
      var m;
      if (/^```/.test(line)) {
        endPara(); endLists();
        var code = [];
        k++;
        while (k < lines.length && !/^```/.test(lines[k])) { code.push(lines[k]); k++; }
        root.appendChild(el("pre", "code", code.join("\n")));
        continue;
      }
      if (/^\s*$/.test(line)) { endPara(); endLists(); continue; }
      if (/^\s*(-{3,}|\*{3,}|<hr\s*\/?>)\s*$/i.test(line)) { endPara(); endLists(); root.appendChild(el("hr", "md-hr")); continue; }
      if ((m = line.match(/^(#{1,6})\s+(.*)$/))) {
        endPara(); endLists();
        var h = el("div", "md-h md-h" + m[1].length); h.appendChild(inline(m[2], ctx)); root.appendChild(h); continue;
      }
      if ((m = line.match(/^>\s?(.*)$/))) {
        endPara(); endLists();
        var q = el("blockquote", "md-quote"); q.appendChild(inline(m[1], ctx)); root.appendChild(q); continue;
      }
      if (/^\s*\|.*\|\s*$/.test(line)) {
        endPara(); endLists();
        var rows = [];
        while (k < lines.length && /^\s*\|.*\|\s*$/.test(lines[k])) { rows.push(lines[k]); k++; }
        k--;
        root.appendChild(mdTable(rows, ctx));
        continue;
      }
      if ((m = line.match(/^(\s*)([-*+]|\d+\.)\s+(.*)$/))) {
        endPara();
        var indent = m[1].replace(/\t/g, "    ").length;
        var ordered = /\d/.test(m[2]);
        while (listStack.length && listStack[listStack.length - 1].indent > indent) listStack.pop();
        var top = listStack[listStack.length - 1];
        if (!top || top.indent < indent || top.ordered !== ordered) {
          var list = el(ordered ? "ol" : "ul", "md-list");
          if (ordered) list.start = parseInt(m[2], 10);
          if (top && top.indent < indent && top.el.lastChild) top.el.lastChild.appendChild(list);
          else { if (top && top.indent === indent) listStack.pop(); root.appendChild(list); }
          listStack.push({indent: indent, el: list, ordered: ordered});
          top = listStack[listStack.length - 1];
        }
        var li = el("li"); li.appendChild(inline(m[3], ctx)); top.el.appendChild(li);
        continue;
      }
      endLists();
      if (!para) { para = el("div", "md-p"); root.appendChild(para); }
      else para.appendChild(document.createElement("br"));
      para.appendChild(inline(line, ctx));
    }
    return root;
  }

  function mdTable(rows, ctx) {
    var table = el("table", "md-table");
    var cells = rows.map(function (r) { return r.trim().replace(/^\||\|$/g, "").split("|"); });
    cells.forEach(function (row, idx) {
      if (idx === 1 && row.every(function (c) { return /^\s*:?-{2,}:?\s*$/.test(c); })) return;
      var tr = el("tr");
      row.forEach(function (c) { var td = el(idx === 0 ? "th" : "td"); td.appendChild(inline(c.trim(), ctx)); tr.appendChild(td); });
      table.appendChild(tr);
    });
    return table;
  }

  // ------------------------------------------------------------------ text objects
  function textObj(obj, ctx, cls) {
    var span = el("span", cls || "");
    if (obj === undefined || obj === null) return span;
    if (typeof obj === "string") { span.textContent = obj; return span; }
    if (obj.tag === "lark_md" || obj.tag === "markdown") { span.appendChild(inline(String(obj.content || ""), ctx)); }
    else if (obj.tag === "plain_text" || obj.tag === undefined) { span.textContent = String(obj.content || ""); span.classList.add("plain"); }
    else { span.appendChild(unsupported(ctx, "text:" + obj.tag)); }
    if (obj.text_color) span.classList.add(colorClass("fc-", obj.text_color, FONT_COLORS));
    if (obj.text_size) span.classList.add("ts-" + String(obj.text_size).replace(/[^a-z_]/gi, ""));
    if (obj.text_align) span.style.textAlign = ["left", "center", "right"].indexOf(obj.text_align) >= 0 ? obj.text_align : "";
    return span;
  }

  function plain(obj) {
    if (!obj) return "";
    if (typeof obj === "string") return obj;
    return String(obj.content || "");
  }

  // ------------------------------------------------------------------ components
  function callbackValue(node) {
    var behaviors = node.behaviors || [];
    for (var i = 0; i < behaviors.length; i++) if (behaviors[i].type === "callback") return {has: true, value: behaviors[i].value};
    return {has: false};
  }

  function openUrl(node) {
    var behaviors = node.behaviors || [];
    for (var i = 0; i < behaviors.length; i++) {
      if (behaviors[i].type === "open_url") return safeUrl(behaviors[i].pc_url || behaviors[i].default_url || "");
    }
    return null;
  }

  function withConfirm(node, ctx, fn) {
    if (!node.confirm) return fn();
    ctx.confirm(plain(node.confirm.title), plain(node.confirm.text)).then(function (ok) { if (ok) fn(); });
  }

  function renderButton(node, ctx, scope) {
    var b = el("button", "btn btn-" + String(node.type || "default").replace(/[^a-z_]/g, "") +
      " btn-size-" + String(node.size || "medium").replace(/[^a-z_]/g, ""));
    b.type = "button";
    b.appendChild(textObj(node.text, ctx));
    if (node.width === "fill") b.classList.add("btn-fill");
    if (node.name) b.setAttribute("data-name", node.name);
    if (node.hover_tips) b.title = plain(node.hover_tips);
    if (node.disabled) {
      b.disabled = true;
      b.title = plain(node.disabled_tips) || ctx.texts.disabled;
      return b;
    }
    var cb = callbackValue(node), url = openUrl(node);
    b.addEventListener("click", function () {
      if (node.form_action_type === "reset" && scope.form) { scope.form.reset(); return; }
      if (node.form_action_type === "submit" && scope.form) {
        withConfirm(node, ctx, function () { scope.form.submit(node, b); });
        return;
      }
      if (!cb.has && !url) return;
      withConfirm(node, ctx, function () {
        if (url) window.open(url, "_blank", "noopener");
        if (cb.has) ctx.busy(b, ctx.onAction({tag: "button", value: cb.value, name: node.name}));
      });
    });
    return b;
  }

  function fieldWrap(node, ctx, control) {
    var wrap = el("div", "field" + (node.label_position === "left" ? " label-left" : ""));
    if (node.width === "fill") wrap.classList.add("fill");
    var id = "f-" + Math.random().toString(36).slice(2, 10);
    if (node.label) {
      var lab = el("label", "field-label");
      lab.appendChild(textObj(node.label, ctx));
      if (node.required) lab.appendChild(el("span", "required-mark", "*"));
      lab.htmlFor = id;
      wrap.appendChild(lab);
    }
    control.id = id;
    wrap.appendChild(control);
    return wrap;
  }

  function placeholderText(node, fallback) {
    return plain(node.placeholder) || fallback || "";
  }

  function registerField(scope, node, get, reset, control) {
    if (scope.form && node.name) scope.form.fields.push({node: node, get: get, reset: reset, control: control});
  }

  function renderInput(node, ctx, scope) {
    var multi = node.input_type === "multiline_text";
    var c = el(multi ? "textarea" : "input", "input");
    if (multi) c.rows = node.rows || 5; else c.type = node.input_type === "password" ? "password" : "text";
    c.placeholder = placeholderText(node);
    if (node.max_length) c.maxLength = node.max_length;
    if (node.default_value !== undefined) c.value = String(node.default_value);
    if (node.name) c.name = node.name;
    if (node.disabled) c.disabled = true;
    if (!node.label && node.required) c.setAttribute("aria-required", "true");
    var initial = c.value;
    registerField(scope, node, function () { return c.value; }, function () { c.value = initial; }, c);
    if (!scope.form) {
      var cb = callbackValue(node);
      c.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && !e.shiftKey && (!multi || e.ctrlKey)) {
          e.preventDefault();
          ctx.busy(c, ctx.onAction({tag: "input", input_value: c.value, value: cb.has ? cb.value : undefined, name: node.name}));
        }
      });
    }
    return fieldWrap(node, ctx, c);
  }

  function memberOptions(node, ctx) {
    var opts = (node.options || []).map(function (o) { return o && o.value; }).filter(function (v) { return v && ctx.members[v]; });
    if (!opts.length) opts = Object.keys(ctx.members);  // Feishu: no options => every member of the chat
    return opts.map(function (id) {
      var m = ctx.members[id];
      return {value: id, text: m.name + (m.dept ? "（" + m.dept + "）" : "")};
    });
  }

  function renderSelect(node, ctx, scope, person) {
    var c = el("select", "select");
    if (node.name) c.name = node.name;
    var ph = el("option", "", placeholderText(node, person ? ctx.texts.person_placeholder : ctx.texts.select_placeholder));
    ph.value = ""; c.appendChild(ph);
    var options = person ? memberOptions(node, ctx) :
      (node.options || []).map(function (o) { return {value: String(o.value), text: plain(o.text)}; });
    options.forEach(function (o, idx) {
      var opt = el("option", "", o.text); opt.value = o.value; c.appendChild(opt);
      if ((node.initial_option !== undefined && String(node.initial_option) === o.value) ||
        (node.initial_index !== undefined && Number(node.initial_index) === idx + 1)) opt.selected = true;
    });
    if (node.disabled) c.disabled = true;
    var initial = c.value;
    registerField(scope, node, function () { return c.value || undefined; }, function () { c.value = initial; }, c);
    if (!scope.form) {
      var cb = callbackValue(node);
      c.addEventListener("change", function () {
        if (!c.value) return;
        withConfirm(node, ctx, function () {
          ctx.busy(c, ctx.onAction({tag: node.tag, option: c.value, value: cb.has ? cb.value : undefined, name: node.name}));
        });
      });
    }
    return fieldWrap(node, ctx, c);
  }

  function renderMultiSelect(node, ctx, scope, person) {
    var box = el("div", "multi-select");
    box.setAttribute("role", "group");
    var ph = placeholderText(node, person ? ctx.texts.person_placeholder : ctx.texts.select_placeholder);
    box.appendChild(el("div", "multi-placeholder", ph));
    box.setAttribute("aria-label", ph);
    var options = person ? memberOptions(node, ctx) :
      (node.options || []).map(function (o) { return {value: String(o.value), text: plain(o.text)}; });
    var selected = (node.selected_values || []).map(String);
    var boxes = [];
    options.forEach(function (o) {
      var lab = el("label", "multi-option");
      var cb = el("input"); cb.type = "checkbox"; cb.value = o.value; cb.checked = selected.indexOf(o.value) >= 0;
      if (node.disabled) cb.disabled = true;
      boxes.push(cb);
      lab.appendChild(cb); lab.appendChild(el("span", "", o.text));
      box.appendChild(lab);
    });
    function values() { return boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; }); }
    registerField(scope, node, function () { var v = values(); return v.length ? v : undefined; },
      function () { boxes.forEach(function (b) { b.checked = selected.indexOf(b.value) >= 0; }); }, box);
    if (!scope.form) {
      var cbv = callbackValue(node);
      boxes.forEach(function (b) {
        b.addEventListener("change", function () {
          ctx.busy(box, ctx.onAction({tag: node.tag, options: values(), value: cbv.has ? cbv.value : undefined, name: node.name}));
        });
      });
    }
    return fieldWrap(node, ctx, box);
  }

  function renderPicker(node, ctx, scope) {
    var c = el("input", "input picker");
    var kind = node.tag;
    c.type = kind === "date_picker" ? "date" : (kind === "picker_time" ? "time" : "datetime-local");
    if (node.name) c.name = node.name;
    var fallback = kind === "date_picker" ? ctx.texts.date_placeholder : (kind === "picker_time" ? ctx.texts.time_placeholder : ctx.texts.datetime_placeholder);
    c.placeholder = placeholderText(node, fallback);
    c.title = c.placeholder;
    if (node.initial_date) c.value = String(node.initial_date);
    if (node.initial_time) c.value = String(node.initial_time);
    if (node.initial_datetime) c.value = String(node.initial_datetime).replace(" ", "T");
    if (node.disabled) c.disabled = true;
    var initial = c.value;
    function value() {  // what Feishu sends: "2026-12-10 +0800", "08:30 +0800", "2026-12-11 12:00 +0800"
      if (!c.value) return undefined;
      return c.value.replace("T", " ") + " " + ctx.tzOffset;
    }
    registerField(scope, node, value, function () { c.value = initial; }, c);
    if (!scope.form) {
      var cb = callbackValue(node);
      c.addEventListener("change", function () {
        if (!c.value) return;
        ctx.busy(c, ctx.onAction({tag: kind, option: value(), timezone: ctx.timezone, value: cb.has ? cb.value : undefined, name: node.name}));
      });
    }
    var wrap = fieldWrap(node, ctx, c);
    var hint = el("span", "picker-hint", c.placeholder);
    wrap.appendChild(hint);
    return wrap;
  }

  function renderChecker(node, ctx, scope) {
    var lab = el("label", "checker");
    var c = el("input"); c.type = "checkbox"; c.checked = !!node.checked;
    if (node.name) c.name = node.name;
    if (node.disabled) c.disabled = true;
    var text = textObj(node.text, ctx, "checker-text");
    lab.appendChild(c); lab.appendChild(text);
    var strike = node.checked_style && node.checked_style.show_strikethrough;
    function style() { lab.classList.toggle("checked", c.checked); lab.classList.toggle("strike", !!(strike && c.checked)); }
    style();
    var initial = c.checked;
    registerField(scope, node, function () { return c.checked; }, function () { c.checked = initial; style(); }, c);
    var cb = callbackValue(node);
    c.addEventListener("change", function () {
      style();
      if (!scope.form && cb.has) ctx.busy(lab, ctx.onAction({tag: "checker", checked: c.checked, value: cb.value, name: node.name}));
    });
    var row = el("div", "checker-row");
    row.appendChild(lab);
    if (node.button_area && node.button_area.buttons) {
      node.button_area.buttons.forEach(function (b) { row.appendChild(renderButton(b, ctx, scope)); });
    }
    return row;
  }

  function renderOverflow(node, ctx) {
    var c = el("select", "select overflow");
    var ph = el("option", "", "⋯"); ph.value = ""; c.appendChild(ph);
    (node.options || []).forEach(function (o) { var opt = el("option", "", plain(o.text)); opt.value = String(o.value); c.appendChild(opt); });
    c.addEventListener("change", function () {
      var v = c.value; c.value = "";
      if (v) withConfirm(node, ctx, function () { ctx.busy(c, ctx.onAction({tag: "overflow", option: v})); });
    });
    return c;
  }

  function renderForm(node, ctx) {
    var f = el("div", "form");
    if (node.name) f.setAttribute("data-form", node.name);
    var form = {fields: [], node: node};
    form.reset = function () { form.fields.forEach(function (fd) { fd.reset(); markError(fd, false); }); };
    form.submit = function (button, buttonEl) {
      var values = {}, missing = [];
      form.fields.forEach(function (fd) {
        var v = fd.get();
        var empty = v === undefined || v === "" || (Array.isArray(v) && !v.length) ||
          (fd.node.tag === "input" && String(v).trim() === "");
        markError(fd, fd.node.required && empty);
        if (fd.node.required && empty) missing.push(fd.node.name);
        if (v !== undefined) values[fd.node.name] = v;
      });
      if (missing.length) { ctx.toast(ctx.texts.required_missing, "error"); return; }  // Feishu: no callback
      var cb = callbackValue(button);
      ctx.busy(buttonEl, ctx.onAction({tag: "button", name: button.name, form_value: values,
        value: cb.has ? cb.value : undefined}));
    };
    var scope = {form: form};
    (node.elements || []).forEach(function (child) { f.appendChild(renderElement(child, ctx, scope)); });
    return f;
  }

  function markError(fd, on) {
    var target = fd.control;
    if (target && target.classList) target.classList.toggle("field-error", !!on);
  }

  function renderColumnSet(node, ctx, scope) {
    var row = el("div", "column-set flex-" + String(node.flex_mode || "none").replace(/[^a-z]/g, ""));
    if (node.background_style && node.background_style !== "default") row.classList.add("bg-" + String(node.background_style).replace(/[^a-z0-9-]/gi, ""));
    (node.columns || []).forEach(function (col) {
      if (!col || col.tag !== "column") { row.appendChild(unsupported(ctx, (col && col.tag) || "?")); return; }
      var c = el("div", "column valign-" + String(col.vertical_align || "top").replace(/[^a-z]/g, ""));
      if (col.width === "auto") c.style.flex = "0 0 auto";
      else if (/^\d+px$/.test(String(col.width || ""))) { c.style.flex = "0 0 auto"; c.style.width = col.width; }
      else c.style.flex = String(Math.max(1, Math.min(5, Number(col.weight) || 1))) + " 1 0";
      if (col.background_style && col.background_style !== "default") c.classList.add("bg-" + String(col.background_style).replace(/[^a-z0-9-]/gi, ""));
      (col.elements || []).forEach(function (child) { c.appendChild(renderElement(child, ctx, scope)); });
      row.appendChild(c);
    });
    return row;
  }

  function renderCollapsible(node, ctx, scope) {
    var d = el("details", "collapsible");
    if (node.expanded) d.open = true;
    var s = el("summary", "collapsible-header");
    var title = node.header && node.header.title;
    if (title && title.tag === "markdown") s.appendChild(inline(String(title.content || ""), ctx));
    else s.appendChild(textObj(title, ctx));
    d.appendChild(s);
    var body = el("div", "collapsible-body");
    (node.elements || []).forEach(function (child) { body.appendChild(renderElement(child, ctx, scope)); });
    d.appendChild(body);
    return d;
  }

  function renderInteractiveContainer(node, ctx, scope) {
    var box = el("div", "interactive-container" + (node.has_border ? " bordered" : ""));
    (node.elements || []).forEach(function (child) { box.appendChild(renderElement(child, ctx, scope)); });
    var cb = callbackValue(node), url = openUrl(node);
    if (!node.disabled && (cb.has || url)) {
      box.classList.add("clickable");
      box.addEventListener("click", function (e) {
        if (e.target.closest("button, input, select, textarea, a, label")) return;  // inner components win
        withConfirm(node, ctx, function () {
          if (url) window.open(url, "_blank", "noopener");
          if (cb.has) ctx.busy(box, ctx.onAction({tag: "interactive_container", value: cb.value}));
        });
      });
    }
    return box;
  }

  function cellPersons(v) {
    if (v === null || v === undefined || v === "") return [];
    var list = Array.isArray(v) ? v : [v];
    return list.map(function (p) { return typeof p === "object" && p ? (p.id || p.open_id || p.user_id || "") : String(p); });
  }

  function renderCell(col, v, ctx) {
    var td = el("td", "dt-" + String(col.data_type || "text").replace(/[^a-z_]/g, ""));
    if (v === undefined || v === null) return td;
    var type = col.data_type || "text";
    if (type === "text") td.textContent = String(v);
    else if (type === "lark_md" || type === "markdown") td.appendChild(inline(String(v), ctx));
    else if (type === "number") {
      var n = Number(v), f = col.format || {};
      var s = isNaN(n) ? String(v) : (f.precision !== undefined ? n.toFixed(Math.max(0, Math.min(10, f.precision))) : String(n));
      if (f.separator && !isNaN(n)) s = s.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
      td.textContent = (f.symbol || "") + s;
    } else if (type === "options") {
      (Array.isArray(v) ? v : [v]).forEach(function (o) {
        var text = typeof o === "object" && o ? o.text : String(o);
        td.appendChild(el("span", "tag " + colorClass("tag-", (o && o.color) || "neutral", TAG_COLORS), text));
      });
    } else if (type === "persons") {
      cellPersons(v).forEach(function (id) { td.appendChild(personChip(ctx, id)); });
    } else if (type === "date") {
      td.textContent = formatDate(v, col.date_format);
    } else td.appendChild(unsupported(ctx, "table:" + type));
    return td;
  }

  function renderTable(node, ctx) {
    var wrap = el("div", "table-wrap");
    var table = el("table", "card-table");
    var cols = node.columns || [];
    var thead = el("thead"), htr = el("tr");
    cols.forEach(function (c) { htr.appendChild(el("th", "", c.display_name || c.name)); });
    thead.appendChild(htr); table.appendChild(thead);
    var tbody = el("tbody");
    table.appendChild(tbody);
    wrap.appendChild(table);
    var rows = node.rows || [];
    var size = Math.max(1, Math.min(10, Number(node.page_size) || 5));
    var pages = Math.max(1, Math.ceil(rows.length / size));
    var page = 1;
    var pager = el("div", "pager");
    function draw() {
      tbody.textContent = "";
      rows.slice((page - 1) * size, page * size).forEach(function (r) {
        var tr = el("tr");
        cols.forEach(function (c) { tr.appendChild(renderCell(c, r[c.name], ctx)); });
        tbody.appendChild(tr);
      });
      pager.textContent = "";
      if (pages > 1) {
        var prev = el("button", "btn btn-text btn-size-small", ctx.texts.page_prev); prev.type = "button";
        var next = el("button", "btn btn-text btn-size-small", ctx.texts.page_next); next.type = "button";
        prev.disabled = page <= 1; next.disabled = page >= pages;
        prev.onclick = function () { page--; draw(); };
        next.onclick = function () { page++; draw(); };
        pager.appendChild(prev);
        pager.appendChild(el("span", "page-of", fmt(ctx.texts.page_of, {page: page, pages: pages})));
        pager.appendChild(next);
      }
    }
    draw();
    wrap.appendChild(pager);
    return wrap;
  }

  var CHART_COLORS = ["#3370ff", "#34c724", "#ff8800", "#7f3bf5", "#f54a45", "#14c0ff", "#ffc60a"];

  // A horizontal rangeColumn (the bot's timelines): a row per label, bars from start to end on
  // a shared day axis, dashed lines for the marks (markLine x), a legend when there are series.
  function renderTimeline(node, ctx) {
    var spec = node.chart_spec || {};
    var xs = Array.isArray(spec.xField) ? spec.xField : [];
    if (spec.direction !== "horizontal" || xs.length !== 2) return unsupported(ctx, "chart:rangeColumn");
    var values = (spec.data && spec.data.values) || [];
    var marks = Array.isArray(spec.markLine) ? spec.markLine : [];
    var lo = 0, hi = 0;
    values.forEach(function (v) { lo = Math.min(lo, Number(v[xs[0]]) || 0); hi = Math.max(hi, Number(v[xs[1]]) || 0); });
    marks.forEach(function (m) { lo = Math.min(lo, Number(m.x) || 0); hi = Math.max(hi, Number(m.x) || 0); });
    var span = hi - lo > 0 ? hi - lo : 1;
    function pct(x) { return ((Number(x) || 0) - lo) / span * 100; }
    var box = el("div", "chart timeline");
    var title = spec.title && (spec.title.text || spec.title);
    if (title && typeof title === "string") box.appendChild(el("div", "chart-title", title));
    var series = [], rows = [];
    values.forEach(function (v) {
      var s = spec.seriesField ? String(v[spec.seriesField]) : "";
      if (spec.seriesField && series.indexOf(s) < 0) series.push(s);
      var key = String(v[spec.yField]);
      var r = rows.filter(function (x) { return x.key === key; })[0];
      if (!r) { r = {key: key, items: []}; rows.push(r); }
      r.items.push(v);
    });
    rows.forEach(function (r) {
      var row = el("div", "chart-row");
      row.appendChild(el("div", "chart-label", r.key));
      var track = el("div", "timeline-track");
      r.items.forEach(function (v) {
        var si = spec.seriesField ? series.indexOf(String(v[spec.seriesField])) : 0;
        var bar = el("div", "timeline-bar");
        bar.style.left = pct(v[xs[0]]) + "%";
        bar.style.width = Math.max(0.5, pct(v[xs[1]]) - pct(v[xs[0]])) + "%";
        bar.style.background = CHART_COLORS[si % CHART_COLORS.length];
        if (spec.seriesField) bar.style.top = (si * 8) + "px";
        bar.title = (spec.seriesField ? v[spec.seriesField] + " · " : "") + r.key + ": " + v[xs[0]] + " → " + v[xs[1]];
        track.appendChild(bar);
      });
      marks.forEach(function (m) {
        var line = el("div", "timeline-mark");
        line.style.left = pct(m.x) + "%";
        track.appendChild(line);
      });
      row.appendChild(track);
      box.appendChild(row);
    });
    var caption = marks.map(function (m) { return "┆ " + ((m.label && m.label.text) || "") + " " + m.x; });
    var axis = spec.axes && spec.axes[0] && spec.axes[0].title && spec.axes[0].title.text;
    if (axis) caption.unshift(axis + "：" + lo + " → " + hi);
    if (caption.length) box.appendChild(el("div", "chart-legend", caption.join("　")));
    if (series.length) {
      var legend = el("div", "chart-legend");
      series.forEach(function (s, i) {
        var item = el("span", "legend-item");
        var sw = el("span", "legend-swatch"); sw.style.background = CHART_COLORS[i % CHART_COLORS.length];
        item.appendChild(sw); item.appendChild(el("span", "", s));
        legend.appendChild(item);
      });
      box.appendChild(legend);
    }
    return box;
  }

  function renderChart(node, ctx) {
    var spec = node.chart_spec || {};
    if (spec.type === "rangeColumn") return renderTimeline(node, ctx);
    if (spec.type !== "bar") return unsupported(ctx, "chart:" + (spec.type || "?"));
    var data = spec.data;
    var values = Array.isArray(data) ? [].concat.apply([], data.map(function (d) { return d.values || []; })) : ((data && data.values) || []);
    var xField = Array.isArray(spec.xField) ? spec.xField[0] : spec.xField;
    var yField = Array.isArray(spec.yField) ? spec.yField[0] : spec.yField;
    var seriesField = spec.seriesField || (Array.isArray(spec.xField) ? spec.xField[1] : null);
    if (spec.direction === "horizontal") {  // bars along x: swap the roles
      var t = xField; xField = yField; yField = t;
    }
    var box = el("div", "chart");
    var title = spec.title && (spec.title.text || spec.title);
    if (title && typeof title === "string") box.appendChild(el("div", "chart-title", title));
    var max = 0, series = [];
    values.forEach(function (v) {
      max = Math.max(max, Number(v[yField]) || 0);
      if (seriesField && series.indexOf(String(v[seriesField])) < 0) series.push(String(v[seriesField]));
    });
    if (max <= 0) max = 1;
    var groups = [];
    values.forEach(function (v) {
      var key = String(v[xField]);
      var g = groups.filter(function (x) { return x.key === key; })[0];
      if (!g) { g = {key: key, items: []}; groups.push(g); }
      g.items.push(v);
    });
    var plot = el("div", "chart-plot");
    groups.forEach(function (g) {
      var row = el("div", "chart-row");
      row.appendChild(el("div", "chart-label", g.key));
      var bars = el("div", "chart-bars");
      g.items.forEach(function (v) {
        var n = Number(v[yField]) || 0;
        var line = el("div", "chart-bar-line");
        var bar = el("div", "chart-bar");
        bar.style.width = Math.max(0, Math.min(100, n / max * 100)) + "%";
        var si = seriesField ? series.indexOf(String(v[seriesField])) : 0;
        bar.style.background = CHART_COLORS[si % CHART_COLORS.length];
        line.appendChild(bar);
        line.appendChild(el("span", "chart-value", String(v[yField])));
        bar.title = (seriesField ? v[seriesField] + " · " : "") + g.key + ": " + v[yField];
        bars.appendChild(line);
      });
      row.appendChild(bars);
      plot.appendChild(row);
    });
    box.appendChild(plot);
    if (seriesField && series.length) {
      var legend = el("div", "chart-legend");
      series.forEach(function (s, i) {
        var item = el("span", "legend-item");
        var sw = el("span", "legend-swatch"); sw.style.background = CHART_COLORS[i % CHART_COLORS.length];
        item.appendChild(sw); item.appendChild(el("span", "", s));
        legend.appendChild(item);
      });
      box.appendChild(legend);
    }
    return box;
  }

  function renderDiv(node, ctx) {
    var d = el("div", "div");
    if (node.text) d.appendChild(textObj(node.text, ctx, "div-text"));
    if (node.fields && node.fields.length) {
      var grid = el("div", "div-fields");
      node.fields.forEach(function (f) {
        var cell = el("div", f.is_short ? "field-short" : "field-long");
        cell.appendChild(textObj(f.text, ctx));
        grid.appendChild(cell);
      });
      d.appendChild(grid);
    }
    return d;
  }

  function renderMarkdown(node, ctx) {
    var md = markdownBlocks(node.content, ctx);
    if (node.text_align) md.style.textAlign = ["left", "center", "right"].indexOf(node.text_align) >= 0 ? node.text_align : "";
    if (node.text_size) md.classList.add("ts-" + String(node.text_size).replace(/[^a-z_]/gi, ""));
    return md;
  }

  function renderElement(node, ctx, scope) {
    scope = scope || {};
    var out;
    if (!node || typeof node !== "object") return unsupported(ctx, String(node));
    switch (node.tag) {
      case "markdown": out = renderMarkdown(node, ctx); break;
      case "div": out = renderDiv(node, ctx); break;
      case "plain_text": out = textObj(node, ctx); break;
      case "hr": out = el("hr", "card-hr"); break;
      case "column_set": out = renderColumnSet(node, ctx, scope); break;
      case "table": out = renderTable(node, ctx); break;
      case "button": out = renderButton(node, ctx, scope); break;
      case "form": out = renderForm(node, ctx); break;
      case "input": out = renderInput(node, ctx, scope); break;
      case "select_static": out = renderSelect(node, ctx, scope, false); break;
      case "select_person": out = renderSelect(node, ctx, scope, true); break;
      case "multi_select_static": out = renderMultiSelect(node, ctx, scope, false); break;
      case "multi_select_person": out = renderMultiSelect(node, ctx, scope, true); break;
      case "date_picker": case "picker_time": case "picker_datetime": out = renderPicker(node, ctx, scope); break;
      case "checker": out = renderChecker(node, ctx, scope); break;
      case "collapsible_panel": out = renderCollapsible(node, ctx, scope); break;
      case "interactive_container": out = renderInteractiveContainer(node, ctx, scope); break;
      case "overflow": out = renderOverflow(node, ctx); break;
      case "person": out = personChip(ctx, node.user_id || ""); break;
      case "person_list":
        out = el("div", "person-list");
        (node.persons || []).forEach(function (p) { out.appendChild(personChip(ctx, (p && p.id) || "")); });
        break;
      case "chart": out = renderChart(node, ctx); break;
      default: return unsupported(ctx, node.tag || "?");
    }
    if (node.element_id) out.setAttribute("data-element-id", node.element_id);
    out.setAttribute("data-tag", node.tag);
    return out;
  }

  function renderHeader(header, ctx) {
    var h = el("div", "card-header tpl-" + String(header.template || "default").replace(/[^a-z]/g, ""));
    var titleRow = el("div", "card-title-row");
    titleRow.appendChild(textObj(header.title, ctx, "card-title"));
    (header.text_tag_list || []).slice(0, 3).forEach(function (t) {
      if (!t || t.tag !== "text_tag") { titleRow.appendChild(unsupported(ctx, (t && t.tag) || "?")); return; }
      titleRow.appendChild(el("span", "tag " + colorClass("tag-", t.color || "neutral", TAG_COLORS), plain(t.text)));
    });
    h.appendChild(titleRow);
    if (header.subtitle) h.appendChild(textObj(header.subtitle, ctx, "card-subtitle"));
    return h;
  }

  function render(card, ctx) {
    var root = el("div", "card");
    card = card || {};
    var config = card.config || {};
    root.classList.add("width-" + String(config.width_mode || "default").replace(/[^a-z]/g, ""));
    if (card.schema !== "2.0") root.appendChild(unsupported(ctx, "schema " + (card.schema || "1.0")));
    if (card.header) root.appendChild(renderHeader(card.header, ctx));
    var body = el("div", "card-body");
    var elements = (card.body && card.body.elements) || card.elements || [];
    elements.forEach(function (node) { body.appendChild(renderElement(node, ctx, {})); });
    root.appendChild(body);
    return root;
  }

  window.SandboxCards = {render: render, markdown: markdownBlocks, inline: inline};
})();

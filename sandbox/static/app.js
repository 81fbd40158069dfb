/* The sandbox group chat: members, acting user, messages (cards rendered by cards.js),
 * composer, clock control. Polls /sandbox/api/state every second. */
(function () {
  "use strict";

  var config = null;
  var members = {};
  var rendered = {};   // message_id -> rev
  var rev = "";
  var polling = false;
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function api(method, path, body) {
    return fetch(path, {
      method: method,
      headers: body ? {"Content-Type": "application/json"} : {},
      body: body ? JSON.stringify(body) : undefined,
      cache: "no-store"
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
        return data;
      });
    });
  }

  function actingAs() { return $("acting-as").value; }

  // ------------------------------------------------------------ toast & confirm
  function toast(text, type) {
    if (!text) return;
    var t = el("div", "toast toast-" + (type || "info"), text);
    t.setAttribute("role", "status");
    $("toasts").appendChild(t);
    setTimeout(function () { t.classList.add("fade"); }, 2600);
    setTimeout(function () { t.remove(); }, 3200);
  }

  function confirmDialog(title, text) {
    return new Promise(function (resolve) {
      $("modal-title").textContent = title;
      $("modal-text").textContent = text;
      $("modal").classList.remove("hidden");
      function done(ok) {
        $("modal").classList.add("hidden");
        $("modal-ok").onclick = null; $("modal-cancel").onclick = null;
        resolve(ok);
      }
      $("modal-ok").onclick = function () { done(true); };
      $("modal-cancel").onclick = function () { done(false); };
    });
  }

  function busy(node, promise) {
    if (node) node.classList.add("busy");
    return Promise.resolve(promise).then(function (x) { if (node) node.classList.remove("busy"); return x; },
      function (e) { if (node) node.classList.remove("busy"); throw e; });
  }

  // ------------------------------------------------------------ rendering messages
  var TEXT_AT = /<at\s+user_id\s*=\s*["']?([^"'>\s]+)["']?\s*>([^<]*)<\/at>/g;

  function renderText(text) {
    // Text messages: plain text; mentions are <at user_id="ou_x"></at> (not the card syntax).
    var box = el("div", "text-body");
    var last = 0, m;
    TEXT_AT.lastIndex = 0;
    while ((m = TEXT_AT.exec(text)) !== null) {
      if (m.index > last) box.appendChild(document.createTextNode(text.slice(last, m.index)));
      var id = m[1];
      var name = id === "all" ? config.texts.at_all : (members[id] ? members[id].name : (m[2] || config.texts.unknown_user));
      var s = el("span", "mention", "@" + name);
      s.setAttribute("data-open-id", id);
      box.appendChild(s);
      last = TEXT_AT.lastIndex;
    }
    if (last < text.length) box.appendChild(document.createTextNode(text.slice(last)));
    return box;
  }

  function cardCtx(messageId) {
    return {
      members: members,
      bot: config.bot,
      texts: config.texts,
      tzOffset: config.tz_offset,
      timezone: config.timezone,
      toast: toast,
      confirm: confirmDialog,
      busy: busy,
      onAction: function (action) { return sendAction(messageId, action); }
    };
  }

  function renderMessage(m) {
    var isBot = m.sender === "bot";
    var row = el("div", "msg " + (isBot ? "from-bot" : "from-user") + (m.sender === actingAs() ? " mine" : ""));
    row.setAttribute("data-message-id", m.message_id);
    row.setAttribute("data-sender", m.sender);
    if (m.visible_to) {  // a private card (仅对你可见): shown only while acting as that person
      row.setAttribute("data-visible-to", m.visible_to);
      row.classList.add("private");
      row.hidden = m.visible_to !== actingAs();
    }
    var who = isBot ? config.bot.name : (members[m.sender] ? members[m.sender].name : m.sender);
    row.appendChild(el("div", "avatar" + (isBot ? " bot" : ""), who.slice(0, 1)));
    var main = el("div", "msg-main");
    var meta = el("div", "msg-meta");
    meta.appendChild(el("span", "msg-name", who));
    if (isBot) meta.appendChild(el("span", "tag tag-blue", config.texts.bot_tag));
    else if (members[m.sender]) meta.appendChild(el("span", "msg-dept", members[m.sender].dept));
    meta.appendChild(el("span", "msg-time", m.time));
    if (m.pinned) meta.appendChild(el("span", "tag tag-orange", config.texts.pinned));
    if (m.visible_to) {
      var owner = members[m.visible_to] ? members[m.visible_to].name : m.visible_to;
      meta.appendChild(el("span", "tag tag-private", config.texts.private_for.replace("{name}", owner)));
    }
    main.appendChild(meta);
    var body;
    try {
      if (m.msg_type === "interactive") body = window.SandboxCards.render(m.content, cardCtx(m.message_id));
      else if (m.msg_type === "text") body = renderText(String((m.content && m.content.text) || ""));
      else body = el("div", "unsupported", config.texts.unsupported.replace("{tag}", m.msg_type));
    } catch (e) {
      body = el("div", "unsupported", config.texts.unsupported.replace("{tag}", "error: " + e.message));
    }
    main.appendChild(body);
    row.appendChild(main);
    return row;
  }

  function renderFeishuTasks(tasks) {
    // What the simulated Feishu holds: read-only, so a newcomer sees the sync happen.
    var list = $("ftasks");
    list.textContent = "";
    if (!tasks.length) { list.appendChild(el("li", "ftask-empty", config.texts.ftasks_empty)); return; }
    tasks.forEach(function (t) {
      var li = el("li", "ftask" + (t.done ? " done" : ""));
      li.appendChild(el("div", "ftask-summary", t.summary));
      li.appendChild(el("div", "ftask-meta", [t.assignee, t.due, t.done ? config.texts.ftasks_done
                                                                     : config.texts.ftasks_open].join(" · ")));
      list.appendChild(li);
    });
  }

  function renderBoard(records) {
    // The 任务 table of the simulated 多维表格 board: read-only, as the bot keeps it.
    var list = $("board");
    list.textContent = "";
    if (!records.length) { list.appendChild(el("li", "ftask-empty", config.texts.board_empty)); return; }
    records.forEach(function (r) {
      var li = el("li", "ftask" + (r.lagging ? " lagging" : ""));
      li.appendChild(el("div", "ftask-summary", r.task));
      var meta = [r.owner, r.status, r.progress + "%"];
      if (r.lagging) meta.push(config.texts.board_lagging);
      li.appendChild(el("div", "ftask-meta", meta.join(" · ")));
      list.appendChild(li);
    });
  }

  function applyState(state) {
    $("clock-now").textContent = state.now;
    if (state.unchanged) return;
    rev = state.rev;
    renderFeishuTasks(state.feishu_tasks || []);
    renderBoard(state.feishu_board || []);
    var box = $("messages");
    var nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
    var added = false;
    var empty = box.querySelector(".empty-chat");
    if (empty && state.messages.length) empty.remove();
    state.messages.forEach(function (m) {
      var old = box.querySelector('[data-message-id="' + m.message_id + '"]');
      if (old && rendered[m.message_id] === m.rev + m.pinned) return;  // unchanged: keep what people type
      var node = renderMessage(m);
      rendered[m.message_id] = m.rev + m.pinned;
      if (old) old.replaceWith(node);
      else { box.appendChild(node); added = true; }
    });
    if (added && nearBottom) box.scrollTop = box.scrollHeight;
  }

  var asked = 0, applied = 0;

  function refresh() {
    var mine = ++asked;
    return api("GET", "/sandbox/api/state?rev=" + encodeURIComponent(rev)).then(function (s) {
      if (mine < applied) return;  // an older poll answered late: never step back
      applied = mine;
      $("banner").classList.remove("offline");
      $("banner").textContent = config.texts.banner;
      applyState(s);
    }, function () {
      $("banner").classList.add("offline");
      $("banner").textContent = config.texts.offline;
    });
  }

  function poll() {
    if (polling) return;
    polling = true;
    refresh().then(function () { polling = false; setTimeout(poll, 1000); });
  }

  // ------------------------------------------------------------ actions
  function sendAction(messageId, action) {
    return api("POST", "/sandbox/api/action", {as: actingAs(), message_id: messageId, action: action})
      .then(function (answer) {
        // as in Feishu: the answer's card is in place when the toast shows
        return refresh().then(function () {
          var t = answer.toast;
          if (t) toast(t.content || (t.i18n && t.i18n.zh_cn) || "", t.type || "info");
          if (answer.warning) toast(answer.warning, "warning");
        });
      }, function (e) { toast(e.message, "error"); });
  }

  function sendMessage(text) {
    var send = $("composer-send");
    send.disabled = true;
    return api("POST", "/sandbox/api/messages", {as: actingAs(), text: text}).then(function () {
      $("composer-text").value = "";
      return refresh();
    }, function (e) { toast(e.message, "error"); }).then(function () {
      send.disabled = false;
      var box = $("messages");
      box.scrollTop = box.scrollHeight;
    });
  }

  function advance(how, button) {
    return busy(button, api("POST", "/sandbox/api/clock", {advance: how}).then(function (r) {
      $("clock-now").textContent = r.now;
      if (r.standup_label) document.querySelector('[data-advance="standup"]').textContent = r.standup_label;
      toast(r.message, "info");
      return refresh();
    }, function (e) { toast(e.message, "error"); }));
  }

  // ------------------------------------------------------------ setup
  function setup(cfg) {
    config = cfg;
    var T = cfg.texts;
    document.title = T.title;
    $("chat-name").textContent = cfg.chat.name;
    $("acting-label").textContent = T.acting_as;
    $("members-title").textContent = T.members;
    $("clock-title").textContent = T.clock;
    $("ftasks-title").textContent = T.ftasks;
    $("board-title").textContent = T.board;
    $("banner").textContent = T.banner;
    $("composer-text").placeholder = T.composer_placeholder;
    $("composer-send").textContent = T.send;
    $("modal-ok").textContent = T.confirm_ok;
    $("modal-cancel").textContent = T.confirm_cancel;
    var labels = {quarter: T.clock_quarter, hour: T.clock_hour, day: T.clock_day, standup: T.clock_standup, key_node: T.clock_key_node};
    Array.prototype.forEach.call(document.querySelectorAll(".clock-btn"), function (b) {
      b.textContent = labels[b.getAttribute("data-advance")];
      b.addEventListener("click", function () { advance(b.getAttribute("data-advance"), b); });
    });
    var select = $("acting-as"), list = $("members");
    cfg.members.forEach(function (m) {
      members[m.open_id] = m;
      var opt = el("option", "", m.name + "（" + m.dept + "）");
      opt.value = m.open_id;
      select.appendChild(opt);
      var li = el("li", "member");
      li.setAttribute("data-open-id", m.open_id);
      li.appendChild(el("span", "avatar small", m.name.slice(0, 1)));
      li.appendChild(el("span", "member-name", m.name));
      li.appendChild(el("span", "msg-dept", m.dept));
      li.addEventListener("click", function () { select.value = m.open_id; onActing(); });
      list.appendChild(li);
    });
    function onActing() {
      Array.prototype.forEach.call(list.children, function (li) {
        li.classList.toggle("acting", li.getAttribute("data-open-id") === select.value);
      });
      Array.prototype.forEach.call(document.querySelectorAll(".msg"), function (row) {
        row.classList.toggle("mine", row.getAttribute("data-sender") === select.value);
        var only = row.getAttribute("data-visible-to");
        if (only) row.hidden = only !== select.value;
      });
    }
    select.addEventListener("change", onActing);
    onActing();
    $("composer").addEventListener("submit", function (e) {
      e.preventDefault();
      var text = $("composer-text").value;
      if (text.trim()) sendMessage(text);
    });
    $("composer-text").addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $("composer").requestSubmit();
      }
    });
    var box = $("messages");
    box.appendChild(el("div", "empty-chat", T.empty_chat));
    document.body.setAttribute("data-ready", "1");
    poll();
  }

  api("GET", "/sandbox/api/config").then(setup, function (e) {
    document.body.textContent = String(e.message);
  });
})();

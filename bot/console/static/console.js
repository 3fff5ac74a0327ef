// The staff console's only script (no inline script: CSP default-src 'self').
// - masked values: a click POSTs to the button's reveal URL with the CSRF header and
//   shows the value as text (never as HTML);
// - the conversation polls for new lines every few seconds while the page is visible;
// - so does the queue, which counts waiting members in the title and announces new ones;
// - the reply being typed is kept in sessionStorage until the server confirms it sent;
// - forms with data-confirm ask first.
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function signedOut(response) {
    if (response.status === 401) {
      window.location.assign("/login?notice=expired");
      return true;
    }
    return false;
  }

  function post(url, fields) {
    var body = new URLSearchParams();
    Object.keys(fields).forEach(function (key) { body.append(key, fields[key]); });
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "X-Requested-With": "fetch" },
      body: body
    });
  }

  // --- reveal a masked value ---------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.masked") : null;
    if (!button) { return; }
    event.preventDefault();
    var fields = { field: button.getAttribute("data-field") || "" };
    if (button.hasAttribute("data-event-id")) {
      fields.event_id = button.getAttribute("data-event-id");
    }
    button.disabled = true;
    post(button.getAttribute("data-reveal-url"), fields).then(function (response) {
      if (signedOut(response)) { return null; }
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (result) {
      if (!result) { return; }
      if (!result.ok) {
        button.disabled = false;
        button.title = (result.data && result.data.message) || "表示できませんでした。";
        return;
      }
      var span = document.createElement("span");
      span.className = "revealed";
      span.textContent = result.data.value;
      span.title = button.title.replace("を表示します（表示は記録されます）", "（表示済み）");
      button.replaceWith(span);
    }).catch(function () {
      button.disabled = false;
      button.title = "通信できませんでした。もう一度お試しください。";
    });
  });

  // --- poll for new lines -------------------------------------------------------------
  var transcript = document.getElementById("transcript");
  var status = document.getElementById("poll-status");
  if (transcript && transcript.hasAttribute("data-poll")) {
    var every = parseInt(transcript.getAttribute("data-poll"), 10) || 3000;
    var busy = false;
    var timer = null;
    var poll = function () {
      if (busy || document.visibilityState !== "visible") { return; }
      busy = true;
      var url = transcript.getAttribute("data-lines-url") + "?after=" +
        encodeURIComponent(transcript.getAttribute("data-after") || "0");
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          if (signedOut(response)) { return; }
          if (!response.ok) {
            if (status) { status.textContent = "新しいメッセージを確認できませんでした。自動で再試行します。"; }
            return;
          }
          var last = response.headers.get("X-Last-Event-Id");
          return response.text().then(function (html) {
            if (status) { status.textContent = ""; }
            if (html.trim()) {
              var stick = transcript.scrollTop + transcript.clientHeight >= transcript.scrollHeight - 8;
              var empty = transcript.querySelector("li.empty");
              if (empty) { empty.remove(); }
              var holder = document.createElement("ol");
              holder.innerHTML = html;
              Array.prototype.forEach.call(holder.children, function (item) { item.classList.add("new"); });
              while (holder.firstElementChild) { transcript.appendChild(holder.firstElementChild); }
              if (stick) { transcript.scrollTop = transcript.scrollHeight; }
            }
            if (last) { transcript.setAttribute("data-after", last); }
            if (response.headers.get("X-Escalation-Status") === "closed" && timer) {
              window.clearInterval(timer);
            }
          });
        })
        .catch(function () {
          if (status) { status.textContent = "通信できませんでした。自動で再試行します。"; }
        })
        .then(function () { busy = false; });
    };
    transcript.scrollTop = transcript.scrollHeight;
    timer = window.setInterval(poll, every);
    document.addEventListener("visibilitychange", poll);
  }

  // --- the queue refreshes itself -------------------------------------------------------------
  // The tables come again from /queue/live every few seconds and replace the old ones
  // when they changed; the title counts the waiting members, "(2) 対応待ち｜…", and the
  // polite live region names the ones that were not there before.
  var live = document.getElementById("queue-live");
  var announcer = document.getElementById("queue-announcer");
  if (live && live.hasAttribute("data-poll")) {
    var queueEvery = parseInt(live.getAttribute("data-poll"), 10) || 5000;
    var queueBusy = false;
    var lastQueue = null;
    var baseTitle = document.title.replace(/^\(\d+\) /, "");
    var waitingRows = function (root) {
      var rows = {};
      Array.prototype.forEach.call(root.querySelectorAll("tr[data-waiting]"), function (row) {
        rows[row.getAttribute("data-waiting")] = row.getAttribute("data-label") || "";
      });
      return rows;
    };
    var known = waitingRows(live);
    var refreshQueue = function () {
      if (queueBusy || document.visibilityState !== "visible") { return; }
      queueBusy = true;
      fetch(live.getAttribute("data-live-url"), {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" }
      }).then(function (response) {
        if (signedOut(response)) { return; }
        if (!response.ok) {
          if (status) { status.textContent = "対応待ちの一覧を更新できませんでした。自動で再試行します。"; }
          return;
        }
        var count = parseInt(response.headers.get("X-Waiting-Count") || "0", 10) || 0;
        return response.text().then(function (html) {
          if (status) { status.textContent = ""; }
          document.title = (count > 0 ? "(" + count + ") " : "") + baseTitle;
          if (html === lastQueue) { return; }
          lastQueue = html;
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var rows = waitingRows(holder);
          var fresh = Object.keys(rows).filter(function (id) { return !(id in known); });
          known = rows;
          // The button the agent is on keeps the focus when the tables are replaced.
          var focused = live.contains(document.activeElement) ? document.activeElement.id : "";
          live.replaceChildren.apply(live, Array.prototype.slice.call(holder.childNodes));
          if (focused && document.getElementById(focused)) { document.getElementById(focused).focus(); }
          if (fresh.length && announcer) {
            announcer.textContent = "新しく対応待ちになった案件があります：" +
              fresh.map(function (id) { return rows[id]; }).join("、");
          }
        });
      }).catch(function () {
        if (status) { status.textContent = "通信できませんでした。自動で再試行します。"; }
      }).then(function () { queueBusy = false; });
    };
    window.setInterval(refreshQueue, queueEvery);
    document.addEventListener("visibilitychange", refreshQueue);
  }

  // --- keep the reply being typed --------------------------------------------------------
  var clear = document.body.getAttribute("data-clear-draft");
  if (clear) {
    try { window.sessionStorage.removeItem("draft:" + clear); } catch (e) { /* storage off */ }
  }
  Array.prototype.forEach.call(document.querySelectorAll("textarea[data-draft-key]"), function (area) {
    var key = "draft:" + area.getAttribute("data-draft-key");
    try {
      var saved = window.sessionStorage.getItem(key);
      if (saved && !area.value) { area.value = saved; }
    } catch (e) { /* storage off */ }
    area.addEventListener("input", function () {
      try { window.sessionStorage.setItem(key, area.value); } catch (e) { /* storage off */ }
    });
  });

  // --- confirm before irreversible actions -------------------------------------------------
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();

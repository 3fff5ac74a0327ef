/*
 * The website chat widget: a conversation with the rasa server's socketio channel.
 *
 * Plain script, no framework and no build step; socket.io-client (loaded before this
 * file, served by the product from web/node_modules) provides the global `io`.
 *
 * - Rendering: every message is built from DOM nodes with textContent. Nothing a
 *   member types or the bot sends is ever parsed as HTML; http(s) URLs in bot
 *   messages become links, any other scheme stays text.
 * - Session: the server issues it (`session_request` {session_id, resume_secret} ->
 *   `session_confirm` {session_id, resume_secret}). The id names the conversation and
 *   is no secret (staff see it); only the resume secret continues it, and the server
 *   replaces the secret on every resume, so the widget stores each new one. Without a
 *   valid secret the server starts a new session, which the widget says. The session
 *   and the rendered history live in sessionStorage only (never localStorage or a
 *   cookie), so a reload or a dropped connection continues the conversation, while
 *   closing the tab ends it: on a shared computer, the next person must not find the
 *   previous member's (possibly verified) conversation.
 * - One screen per conversation: when another tab resumes this session (a duplicated
 *   tab carries sessionStorage along), the server tells this one
 *   (`session_taken_over`) and disconnects it; the widget says so, forgets the session
 *   and stays quiet until the member starts a new conversation.
 * - Idle: after the session expiration time of domain.yml (15 minutes) without a
 *   message either way, the widget forgets the session and starts a fresh one, as the
 *   rasa server does.
 */
"use strict";

(function () {
  const root = document.getElementById("chat");
  const log = document.getElementById("log");
  const statusLine = document.getElementById("status");
  const typing = document.getElementById("typing");
  const form = document.getElementById("composer");
  const input = document.getElementById("message");
  const errorLine = document.getElementById("message-error");
  const restartButton = document.getElementById("restart");
  const sendButton = document.getElementById("send");

  const config = {
    socketUrl: root.dataset.socketUrl,
    socketPath: root.dataset.socketPath || "/socket.io",
    maxChars: Number(root.dataset.maxChars) || 2000,
    idleMs: (Number(root.dataset.idleMinutes) || 15) * 60 * 1000,
  };
  // Event names of credentials.yml (Rasa's defaults).
  const USER_EVENT = "user_uttered";
  const BOT_EVENT = "bot_uttered";
  const TAKEN_OVER_EVENT = "session_taken_over";
  const SESSION_KEY = "privacy-chat.session";
  const HISTORY_PREFIX = "privacy-chat.history.";
  const MAX_HISTORY = 200;
  const TYPING_TIMEOUT_MS = 60 * 1000;
  const URL_PATTERN = /https?:\/\/[^\s<>"'「」『』（）()、。，]+/g;
  // Punctuation that ends a sentence rather than a URL.
  const TRAILING_PUNCTUATION = /[.,;:!?]+$/;

  let session = null; // {id, secret, lastActive}
  let history = [];
  let ready = false; // the server confirmed our session on the current connection
  let takenOver = false; // another screen resumed this conversation: stay disconnected
  const pending = []; // {text, shownAs} typed while not ready, sent on session_confirm
  let typingTimer = null;

  // --- storage: sessionStorage may be unavailable or full; the chat still works.

  function readJson(key) {
    try {
      const raw = window.sessionStorage.getItem(key);
      return raw ? JSON.parse(raw) : null;
    } catch (_) {
      return null;
    }
  }

  function writeJson(key, value) {
    try {
      window.sessionStorage.setItem(key, JSON.stringify(value));
    } catch (_) {
      /* storage full or disabled: the conversation simply won't survive a reload */
    }
  }

  function removeKey(key) {
    try {
      window.sessionStorage.removeItem(key);
    } catch (_) {
      /* nothing stored */
    }
  }

  function isExpired(candidate) {
    return !candidate || Date.now() - candidate.lastActive > config.idleMs;
  }

  function loadSession() {
    const stored = readJson(SESSION_KEY);
    if (
      !stored ||
      typeof stored.id !== "string" ||
      typeof stored.secret !== "string" ||
      typeof stored.lastActive !== "number"
    ) {
      return null;
    }
    return stored;
  }

  function saveSession() {
    if (session) writeJson(SESSION_KEY, session);
  }

  function touch() {
    if (!session) return;
    session.lastActive = Date.now();
    saveSession();
  }

  function saveHistory() {
    if (session) writeJson(HISTORY_PREFIX + session.id, history.slice(-MAX_HISTORY));
  }

  function forget(old) {
    if (old) removeKey(HISTORY_PREFIX + old.id);
    removeKey(SESSION_KEY);
  }

  // --- rendering

  function safeLink(candidate) {
    let url;
    try {
      url = new URL(candidate);
    } catch (_) {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    const link = document.createElement("a");
    link.href = url.href;
    link.textContent = candidate;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    const hint = document.createElement("span");
    hint.className = "visually-hidden";
    hint.textContent = "（新しいタブで開きます）";
    link.append(hint);
    return link;
  }

  /** Append `text` to `parent` as text nodes, with http(s) URLs as links. */
  function appendWithLinks(parent, text) {
    let last = 0;
    for (const match of text.matchAll(URL_PATTERN)) {
      const url = match[0].replace(TRAILING_PUNCTUATION, "");
      const link = safeLink(url);
      if (!link) continue;
      parent.append(document.createTextNode(text.slice(last, match.index)));
      parent.append(link);
      last = match.index + url.length;
    }
    parent.append(document.createTextNode(text.slice(last)));
  }

  function renderEntry(entry) {
    const bubble = document.createElement("div");
    bubble.className = `msg msg--${entry.role}`;
    if (entry.role !== "notice") {
      const who = document.createElement("span");
      who.className = "visually-hidden";
      who.textContent = entry.role === "user" ? "あなた: " : "アシスタント: ";
      bubble.append(who);
    }
    if (entry.role === "bot") {
      appendWithLinks(bubble, entry.text);
    } else {
      bubble.append(document.createTextNode(entry.text));
    }
    log.append(bubble);
    if (entry.replies && entry.replies.length) log.append(renderQuickReplies(entry.replies));
  }

  function renderQuickReplies(replies) {
    const group = document.createElement("div");
    group.className = "quick-replies";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "選択肢");
    for (const reply of replies) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "quick-reply";
      button.textContent = reply.title;
      button.addEventListener("click", () => {
        send(reply.payload, reply.title);
        // The buttons are gone now: keep the keyboard where the member continues.
        input.focus();
      });
      group.append(button);
    }
    return group;
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function addEntry(entry) {
    if (entry.role !== "notice") {
      history.push(entry);
      saveHistory();
    }
    renderEntry(entry);
    scrollToEnd();
  }

  /** Buttons answer the message they came with: once the member speaks, they go. */
  function retireQuickReplies() {
    for (const group of log.querySelectorAll(".quick-replies")) group.remove();
    let changed = false;
    for (const entry of history) {
      if (entry.replies && entry.replies.length) {
        entry.replies = [];
        changed = true;
      }
    }
    if (changed) saveHistory();
  }

  function clearLog() {
    log.replaceChildren();
    history = [];
  }

  function setStatus(state, text) {
    root.dataset.state = state;
    statusLine.textContent = text;
  }

  function showTyping(on) {
    clearTimeout(typingTimer);
    typing.hidden = !on;
    // Never spin forever: the answer may have been lost with a dropped connection.
    if (on) typingTimer = setTimeout(() => showTyping(false), TYPING_TIMEOUT_MS);
  }

  function showError(text) {
    errorLine.textContent = text;
  }

  // --- the conversation

  const socket = window.io(config.socketUrl, {
    path: config.socketPath,
    // WebSocket only: the rasa server sends no CORS headers, so the long-polling
    // fallback could not work from this page's origin anyway.
    transports: ["websocket"],
    autoConnect: false,
    reconnectionDelayMax: 10000,
  });

  function requestSession() {
    ready = false;
    socket.emit("session_request", {
      session_id: session ? session.id : null,
      resume_secret: session ? session.secret : null,
    });
  }

  function flush() {
    while (ready && session && pending.length) {
      socket.emit(USER_EVENT, { message: pending.shift().text, session_id: session.id });
    }
  }

  function setComposerEnabled(enabled) {
    input.disabled = !enabled;
    sendButton.disabled = !enabled;
  }

  /** Send `text` (typed, or a quick reply's payload shown as `shownAs`). */
  function send(text, shownAs) {
    const trimmed = text.trim();
    if (!trimmed) return false;
    if ([...trimmed].length > config.maxChars) {
      showError(
        `メッセージが長すぎます。${config.maxChars}文字以内にまとめて、もう一度お送りください。`,
      );
      return false;
    }
    showError("");
    if (session && isExpired(session)) startFresh("idle");
    retireQuickReplies();
    addEntry({ role: "user", text: shownAs || trimmed });
    touch();
    pending.push({ text: trimmed, shownAs: shownAs || trimmed });
    flush();
    showTyping(true);
    return true;
  }

  function validReplies(candidates) {
    return Array.isArray(candidates)
      ? candidates
          .filter((r) => r && typeof r.title === "string" && typeof r.payload === "string")
          .map((r) => ({ title: r.title, payload: r.payload }))
      : [];
  }

  /** A stored history entry as the widget wrote it, or null. */
  function validEntry(entry) {
    if (!entry || typeof entry.text !== "string") return null;
    if (entry.role !== "user" && entry.role !== "bot") return null;
    return { role: entry.role, text: entry.text, replies: validReplies(entry.replies) };
  }

  function onBotMessage(message) {
    if (!message || typeof message !== "object") return;
    const text = typeof message.text === "string" ? message.text : "";
    const replies = validReplies(message.quick_replies);
    if (!text && !replies.length) return; // images, carousels: nothing this bot sends
    showTyping(false);
    addEntry({ role: "bot", text, replies });
    touch();
  }

  /** Forget the conversation and start a new one on a fresh connection. */
  function startFresh(reason) {
    forget(session);
    session = null;
    ready = false;
    takenOver = false;
    setComposerEnabled(true);
    pending.length = 0;
    clearLog();
    showTyping(false);
    addEntry({
      role: "notice",
      text:
        reason === "idle"
          ? `${Math.round(config.idleMs / 60000)}分間やり取りがなかったため、新しい会話を始めました。`
          : "新しい会話を始めました。",
    });
    // A new connection leaves the old session's room behind.
    socket.disconnect();
    socket.connect();
  }

  socket.on("connect", () => {
    if (takenOver) {
      socket.disconnect(); // a retry of the transport, not the member's wish
      return;
    }
    setStatus("connecting", "接続しています…");
    requestSession();
  });

  /** The server's answer to session_request: the session and its next resume secret. */
  function onSessionConfirm(confirmation) {
    const id = confirmation && confirmation.session_id;
    const secret = confirmation && confirmation.resume_secret;
    if (typeof id !== "string" || !id || typeof secret !== "string" || !secret) return;
    // The server could not continue our conversation (its secret was refused, or the
    // session expired there): what is on screen does not belong to the new one.
    const refused = session !== null && session.id !== id;
    if (refused) forget(session);
    const lastActive = session && !refused ? session.lastActive : Date.now();
    // The secret changes with every confirmation: the one we sent no longer works.
    session = { id, secret, lastActive };
    saveSession();
    if (refused) {
      clearLog();
      addEntry({
        role: "notice",
        text: "前回の会話を続けられなかったため、新しい会話を始めました。",
      });
      // What the member typed meanwhile still goes out, now in the new conversation.
      for (const message of pending) addEntry({ role: "user", text: message.shownAs });
    }
    saveHistory();
    ready = true;
    setStatus("connected", "接続しました。ご質問をどうぞ。");
    flush();
  }

  /** Another screen resumed this conversation; the server disconnects this one. */
  function onTakenOver() {
    takenOver = true;
    forget(session); // its secret is void now; a reload starts afresh
    session = null;
    ready = false;
    pending.length = 0;
    showTyping(false);
    retireQuickReplies();
    addEntry({
      role: "notice",
      text:
        "このチャットは別の画面で開かれたため、ここでの会話を終了しました。" +
        "続けるには、その画面をお使いください。ここで新しく始めるには「新しい会話」を押してください。",
    });
    setStatus("ended", "別の画面で開かれたため、ここでの会話を終了しました。");
    setComposerEnabled(false);
  }

  socket.on("session_confirm", onSessionConfirm);
  socket.on(TAKEN_OVER_EVENT, onTakenOver);

  socket.on(BOT_EVENT, onBotMessage);

  socket.on("disconnect", (reason) => {
    ready = false;
    if (takenOver) return; // ended on purpose: no reconnecting, the notice stays
    setStatus("disconnected", "接続が切れました。再接続しています…");
    // The server closed the connection on purpose: socket.io does not retry by itself.
    if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
  });

  socket.on("connect_error", () => {
    setStatus("disconnected", "サーバーに接続できません。再接続を試みています…");
  });

  // --- the page

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (send(input.value)) input.value = "";
  });

  input.addEventListener("keydown", (event) => {
    // Enter confirms a kana-kanji conversion while the IME is composing: not a send.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) {
      return;
    }
    event.preventDefault();
    form.requestSubmit();
  });

  input.addEventListener("input", () => showError(""));

  restartButton.addEventListener("click", () => {
    startFresh("restart");
    input.focus();
  });

  function checkIdle() {
    if (session && isExpired(session)) startFresh("idle");
  }

  // Timers are throttled in background tabs: check again when the member comes back.
  setInterval(checkIdle, 15 * 1000);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) checkIdle();
  });

  // --- start: restore the conversation of this tab unless it has gone idle.

  const stored = loadSession();
  if (stored && isExpired(stored)) {
    forget(stored);
    addEntry({
      role: "notice",
      text: `${Math.round(config.idleMs / 60000)}分間やり取りがなかったため、新しい会話を始めました。`,
    });
  } else if (stored) {
    session = stored;
    const saved = readJson(HISTORY_PREFIX + stored.id);
    history = Array.isArray(saved) ? saved.map(validEntry).filter(Boolean) : [];
    for (const entry of history) renderEntry(entry);
    scrollToEnd();
  }
  socket.connect();
})();

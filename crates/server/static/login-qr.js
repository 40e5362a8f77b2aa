// The QR login page: shows a new QR code every second while no phone has scanned it, follows
// the login's status (long-polled) and completes it by itself once ConsentID approved. Without
// JavaScript the page reloads itself every two seconds (a fresh code) and keeps its "continue"
// button.
"use strict";
(function () {
  const section = document.getElementById("login-qr");
  if (!section) return;
  const statusUrl = section.dataset.statusUrl;
  const frameUrl = section.dataset.frameUrl;
  const image = document.getElementById("qr-code");
  const qrBox = section.querySelector(".qr-box");
  const statusLine = document.getElementById("status");
  const countdown = document.getElementById("countdown");
  const completeForm = document.getElementById("complete-form");
  const retry = document.getElementById("retry");
  const checkLink = document.getElementById("check-link");
  if (checkLink) checkLink.hidden = true;
  const messages = {};
  for (const item of document.querySelectorAll("#messages li")) messages[item.dataset.key] = item.textContent;
  let secondsLeft = Number(section.dataset.secondsLeft) || 0;
  let waiting = section.dataset.status === "pending" && section.dataset.hint === "waiting";
  let done = false;

  function messageFor(status, hint) {
    return messages[status + ":" + hint] || messages[status] || messages["failed"];
  }

  function show(status, hint) {
    statusLine.textContent = messageFor(status, hint);
    statusLine.className = "status " + status;
  }

  function finish(status, hint) {
    done = true;
    waiting = false;
    show(status, hint);
    for (const element of section.querySelectorAll(".qr-box, .actions")) element.hidden = true;
    if (status === "approved") {
      completeForm.hidden = false;
      completeForm.submit();
    } else if (status === "consumed") {
      // Completed in another tab of this browser (the same-phone link): the session is in.
      window.location.assign("/account");
    } else if (retry) {
      retry.hidden = false;
    }
  }

  // A new code every second: the old one goes stale in a few seconds (a relayed screenshot).
  function refreshCode() {
    if (!waiting || done) return;
    image.src = frameUrl + "?t=" + Date.now();
  }

  // A long poll: the server answers as soon as a phone takes the login or its request is
  // answered (or after 20 s). Asked again at once, unless the answer came quickly without news
  // (then after a second).
  async function poll() {
    if (done) return;
    const started = Date.now();
    let news = false;
    try {
      const response = await fetch(statusUrl + "?wait=20", { headers: { "Accept": "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const state = await response.json();
        secondsLeft = state.seconds_left;
        if (state.status !== "pending") {
          finish(state.status, state.hint);
          return;
        }
        if (state.hint !== "waiting" && waiting) {
          // A phone took the login: the code is of no more use.
          news = true;
          waiting = false;
          qrBox.hidden = true;
          show(state.status, state.hint);
        }
      }
    } catch (error) {
      // Network trouble: keep trying until the login expires.
    }
    setTimeout(poll, news || Date.now() - started >= 1000 ? 0 : 1000);
  }

  setInterval(function () {
    if (done) return;
    secondsLeft = Math.max(0, secondsLeft - 1);
    if (countdown) countdown.textContent = String(secondsLeft);
    refreshCode();
  }, 1000);

  if (section.dataset.status === "pending") poll();
  // Back from the app on the same phone, already approved: complete at once.
  else if (section.dataset.status === "approved") finish("approved", "");
})();

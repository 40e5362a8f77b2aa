// The login waiting page: shows the time left and the request's status (long-polled), and
// completes the login by itself once ConsentID approved it. Without JavaScript the page still
// works through its "check status" link and "continue" button.
"use strict";
(function () {
  const section = document.getElementById("login-wait");
  if (!section) return;
  const statusUrl = section.dataset.statusUrl;
  const statusLine = document.getElementById("status");
  const countdown = document.getElementById("countdown");
  const completeForm = document.getElementById("complete-form");
  const retry = document.getElementById("retry");
  const checkLink = document.getElementById("check-link");
  if (checkLink) checkLink.hidden = true;
  const messages = {};
  for (const item of document.querySelectorAll("#messages li")) messages[item.dataset.key] = item.textContent;
  let secondsLeft = Number(section.dataset.secondsLeft) || 0;
  let done = false;

  function messageFor(status, hint) {
    return messages[status + ":" + hint] || messages[status] || messages["failed"];
  }

  function finish(status, hint) {
    done = true;
    statusLine.textContent = messageFor(status, hint);
    statusLine.className = "status " + status;
    for (const element of section.querySelectorAll(".code-box, .actions")) element.hidden = true;
    if (status === "approved") {
      completeForm.hidden = false;
      completeForm.submit();
    } else if (retry) {
      retry.hidden = false;
    }
  }

  // A long poll: the server answers as soon as the request is answered (or after 20 s).
  // Asked again at once, unless the answer came quickly without news (then after a second).
  async function poll() {
    if (done) return;
    const started = Date.now();
    try {
      const response = await fetch(statusUrl + "?wait=20", { headers: { "Accept": "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const state = await response.json();
        secondsLeft = state.seconds_left;
        if (state.status !== "pending") {
          finish(state.status, state.hint);
          return;
        }
      }
    } catch (error) {
      // Network trouble: keep trying until the request expires.
    }
    setTimeout(poll, Date.now() - started < 1000 ? 1000 : 0);
  }

  setInterval(function () {
    if (done) return;
    secondsLeft = Math.max(0, secondsLeft - 1);
    if (countdown) countdown.textContent = String(secondsLeft);
  }, 1000);

  if (section.dataset.status === "pending") poll();
})();

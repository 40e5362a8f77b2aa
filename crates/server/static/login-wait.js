// The login waiting page: shows the time left and the request's status, and completes the
// login by itself once ConsentID approved it. Without JavaScript the page still works through
// its "check status" link and "continue" button.
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

  async function poll() {
    if (done) return;
    try {
      const response = await fetch(statusUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" });
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
    setTimeout(poll, 1000);
  }

  setInterval(function () {
    if (done) return;
    secondsLeft = Math.max(0, secondsLeft - 1);
    if (countdown) countdown.textContent = String(secondsLeft);
  }, 1000);

  if (section.dataset.status === "pending") poll();
})();

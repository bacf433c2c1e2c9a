// A user message's page in the admin shows its reply as the LLM writes it: the reply's stream
// (Server-Sent Events, the message's stream_url, with the admin's session) fills the text piece by
// piece, starts it over on `reset`, and ends with the reply as saved. No dependency, no reload.
(function () {
  "use strict";
  var ENDS = ["done", "error", "stopped"];

  function describe(state) {
    if (state.state === "retrying") { return "retrying at " + (state.retry_at || "?") + " (" + (state.error || "") + ")"; }
    if (state.state === "started") { return "being written (attempt " + state.attempt + ")"; }
    return state.state;
  }

  function follow(box) {
    var text = box.querySelector(".reply-text");
    var state = box.querySelector(".reply-state");
    var source = new EventSource(box.getAttribute("data-stream"), {withCredentials: true});
    var shown = "";
    box.setAttribute("data-live", "connecting");
    source.onopen = function () { box.setAttribute("data-live", "stream"); };
    source.addEventListener("status", function (event) { state.textContent = describe(JSON.parse(event.data)); });
    source.addEventListener("notice", function (event) { state.textContent = JSON.parse(event.data).message; });
    source.addEventListener("delta", function (event) {
      shown += JSON.parse(event.data).delta;
      text.textContent = shown;
    });
    source.addEventListener("reset", function () { shown = ""; text.textContent = ""; });
    ENDS.forEach(function (name) {
      source.addEventListener(name, function (event) {
        var message = JSON.parse(event.data).message;
        if (message) { text.textContent = message.content; }
        state.textContent = name === "done" ? "complete" : name;
        box.setAttribute("data-finished", "1");
        box.setAttribute("data-live", "done");
        source.close();
      });
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) { box.setAttribute("data-live", "closed"); }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.EventSource) { return; }
    document.querySelectorAll(".reply-live[data-finished='0']").forEach(follow);
  });
})();

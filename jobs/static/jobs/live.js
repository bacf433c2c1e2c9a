// Keeps every unfinished run on the page current. The page follows its runs' events in one stream
// (Server-Sent Events, /api/runs/events/?ids=…); when one of them changes, its cells are rendered
// again by the admin's JSON endpoint (the same HTML the page was rendered with) and the values
// shown beside it (attempts, duration) are updated. On a run's own page, a run that ends makes the
// page read itself again, so its buttons, attempts, times, result and log lines are the final ones.
// Where a stream cannot open (no EventSource, refused, cut off for good), the page polls instead,
// every second. No reload, no dependency.
(function () {
  "use strict";
  var INTERVAL_MS = 1000;
  // Changes that come together are rendered together: at most one request per this many ms.
  var GATHER_MS = 150;

  function liveCells() {
    return Array.prototype.slice.call(document.querySelectorAll(".run-live[data-finished='0']"));
  }

  function liveIds() {
    var ids = liveCells().map(function (cell) { return cell.getAttribute("data-run"); });
    return ids.filter(function (id, index) { return ids.indexOf(id) === index; });
  }

  function endpoint() {
    var match = location.pathname.match(/^(.*\/admin\/)/);
    return (match ? match[1] : "/admin/") + "jobs/jobrun/live/";
  }

  function showFields(id, fields) {
    Object.keys(fields || {}).forEach(function (name) {
      var selector = ".run-field[data-run='" + id + "'][data-run-field='" + name + "']";
      document.querySelectorAll(selector).forEach(function (element) { element.textContent = fields[name]; });
    });
  }

  function isRunPage() {
    return document.getElementById("jobrun_form") !== null;
  }

  function readPageAgain() {
    return fetch(location.href, {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("content");
        var current = document.getElementById("content");
        if (fresh && current) { current.replaceWith(fresh); }
      });
  }

  // Renders the cells of these runs again; resolves once the page shows them.
  function render(ids) {
    if (!ids.length) { return Promise.resolve(); }
    return fetch(endpoint() + "?ids=" + encodeURIComponent(ids.join(",")), {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : {runs: {}}; })
      .then(function (body) {
        var ended = false;
        liveCells().forEach(function (cell) {
          var id = cell.getAttribute("data-run");
          var run = body.runs[id];
          if (!run || ids.indexOf(id) < 0) { return; }
          cell.outerHTML = run.html;
          showFields(id, run.fields);
          ended = ended || run.finished;
        });
        return ended && isRunPage() ? readPageAgain() : null;
      });
  }

  function poll() {
    var ids = liveIds();
    if (!ids.length) { return; }
    render(ids)
      .catch(function () { /* the next poll tries again */ })
      .then(function () { if (liveCells().length) { setTimeout(poll, INTERVAL_MS); } });
  }

  function follow() {
    var ids = liveIds();
    if (!ids.length) { return; }
    if (!window.EventSource) { setTimeout(poll, INTERVAL_MS); return; }
    var source = new EventSource("/api/runs/events/?ids=" + ids.join(","), {withCredentials: true});
    var opened = false;
    var changed = {};
    var timer = null;
    document.documentElement.setAttribute("data-live", "connecting");

    function flush() {
      timer = null;
      var due = Object.keys(changed);
      changed = {};
      render(due).catch(function () { /* the next event renders again */ }).then(function () {
        if (!liveCells().length) { source.close(); document.documentElement.setAttribute("data-live", "done"); }
      });
    }

    function changedRun(event) {
      var run = JSON.parse(event.data).run;
      if (!run) { return; }
      changed[run] = true;
      if (timer === null) { timer = setTimeout(flush, GATHER_MS); }
    }

    source.onopen = function () {
      opened = true;
      document.documentElement.setAttribute("data-live", "stream");
    };
    source.addEventListener("status", changedRun);
    source.addEventListener("progress", changedRun);
    source.onerror = function () {
      // Refused or closed for good before it ever opened: poll. After it opened, EventSource
      // reconnects by itself (a proxy's timeout, a restarted web process).
      if (!opened || source.readyState === EventSource.CLOSED) {
        source.close();
        document.documentElement.setAttribute("data-live", "polling");
        if (liveCells().length) { setTimeout(poll, INTERVAL_MS); }
      }
    };
  }

  document.addEventListener("DOMContentLoaded", follow);
})();

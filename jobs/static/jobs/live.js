// Keeps every unfinished run on the page current: polls the admin's JSON endpoint (the same HTML
// the page was rendered with) until each run has finished, and updates the values shown beside it
// (attempts, duration). On a run's own page, a run that ends makes the page read itself again, so
// its buttons, attempts, times, result and log lines are the final ones. No reload, no dependency.
(function () {
  "use strict";
  var INTERVAL_MS = 1000;

  function liveCells() {
    return Array.prototype.slice.call(document.querySelectorAll(".run-live[data-finished='0']"));
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

  function poll() {
    var cells = liveCells();
    if (!cells.length) { return; }
    var ids = cells.map(function (cell) { return cell.getAttribute("data-run"); });
    fetch(endpoint() + "?ids=" + encodeURIComponent(ids.join(",")), {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : {runs: {}}; })
      .then(function (body) {
        var ended = false;
        cells.forEach(function (cell) {
          var id = cell.getAttribute("data-run");
          var run = body.runs[id];
          if (!run) { return; }
          cell.outerHTML = run.html;
          showFields(id, run.fields);
          ended = ended || run.finished;
        });
        return ended && isRunPage() ? readPageAgain() : null;
      })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { if (liveCells().length) { setTimeout(poll, INTERVAL_MS); } });
  }

  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, INTERVAL_MS); });
})();

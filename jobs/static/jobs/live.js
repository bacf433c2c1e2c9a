// Keeps every unfinished run cell on the page current: polls the admin's JSON endpoint (the same
// HTML the page was rendered with) until each run has finished. No reload, no dependency.
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

  function poll() {
    var cells = liveCells();
    if (!cells.length) { return; }
    var ids = cells.map(function (cell) { return cell.getAttribute("data-run"); });
    fetch(endpoint() + "?ids=" + encodeURIComponent(ids.join(",")), {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : {runs: {}}; })
      .then(function (body) {
        cells.forEach(function (cell) {
          var run = body.runs[cell.getAttribute("data-run")];
          if (run) { cell.outerHTML = run.html; }
        });
      })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { if (liveCells().length) { setTimeout(poll, INTERVAL_MS); } });
  }

  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, INTERVAL_MS); });
})();

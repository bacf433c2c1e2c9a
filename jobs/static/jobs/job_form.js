// The job form: choosing a kind reloads the page with the fields for that kind's params.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var kind = document.getElementById("id_kind");
    if (!kind || kind.disabled) { return; }
    kind.addEventListener("change", function () {
      if (!kind.value) { return; }
      var address = new window.URL(window.location.href);
      address.searchParams.set("kind", kind.value);
      window.location.href = address.toString();
    });
  });
})();

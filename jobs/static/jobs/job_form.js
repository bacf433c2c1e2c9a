// The job form: choosing a kind reloads the page with the fields of that kind's params, carrying
// what was typed so far in the address (JobAdmin.get_changeform_initial_data puts it back).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var kind = document.getElementById("id_kind");
    if (!kind || kind.disabled) { return; }
    kind.addEventListener("change", function () {
      if (!kind.value) { return; }
      var address = new window.URL(window.location.href);
      var typed = new window.FormData(kind.form);
      address.search = "";
      typed.forEach(function (value, name) {
        if (name === "csrfmiddlewaretoken" || name === "kind" || typeof value !== "string" || value === "") { return; }
        address.searchParams.append(name, value);
      });
      // An unticked box sends nothing: say so, or the field's default (ticked) comes back.
      kind.form.querySelectorAll("input[type=checkbox]:not(:checked)").forEach(function (box) {
        if (box.name && !typed.has(box.name)) { address.searchParams.append(box.name, ""); }
      });
      address.searchParams.set("kind", kind.value);
      window.location.href = address.toString();
    });
  });
})();

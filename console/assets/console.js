// bank-transfer console: refreshes every element marked data-live="<url>" from that URL every
// two seconds (server-rendered HTML fragments), while the tab is visible. Nothing else: every
// form works without it.
(function () {
  "use strict";
  var busy = false;
  function refresh() {
    if (busy || document.hidden) return;
    var parts = Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
    if (!parts.length) return;
    busy = true;
    Promise.all(parts.map(function (el) {
      return fetch(el.getAttribute("data-live"), { cache: "no-store" })
        .then(function (r) { return r.text(); })
        .then(function (html) { el.innerHTML = html; el.removeAttribute("data-stale"); })
        .catch(function () { el.setAttribute("data-stale", "the console does not answer"); });
    })).then(function () {
      busy = false;
      var stamp = document.getElementById("updated");
      if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
    });
  }
  setInterval(refresh, 2000);
})();

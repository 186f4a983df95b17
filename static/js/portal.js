// Client portal enhancements; every portal page works without this file.
(function () {
  "use strict";

  // Show log times in the browser's own zone: pick it in the time-zone form
  // and send it once, only while the customer has not chosen a zone yet.
  function detectTimeZone() {
    var form = document.querySelector("#time-zone-form[data-detect-time-zone]");
    if (!form || !window.Intl || !window.sessionStorage) return;
    if (sessionStorage.getItem("portal-tz-sent")) return;
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var select = form.querySelector("select[name=tz]");
    if (!zone || !select || select.value === zone) return;
    var known = Array.prototype.some.call(select.options, function (option) { return option.value === zone; });
    if (!known) return;
    sessionStorage.setItem("portal-tz-sent", "1");
    select.value = zone;
    form.submit();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", detectTimeZone);
  } else {
    detectTimeZone();
  }
})();

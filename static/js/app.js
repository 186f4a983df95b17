// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  // A page that answers a POST (a created or revealed key) names a safe URL for
  // itself, so a reload opens that page instead of offering to resend the form.
  var replaceUrl = document.body && document.body.getAttribute("data-replace-url");
  if (replaceUrl && window.history && history.replaceState) {
    history.replaceState(null, "", replaceUrl);
  }

  // Copy buttons: <button data-copy-target="#id"> copies that element's text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var target = document.querySelector(button.getAttribute("data-copy-target"));
    if (!target || !navigator.clipboard) return;
    var text = target.value !== undefined && target.tagName !== "CODE" && target.tagName !== "PRE" ? target.value : target.textContent;
    navigator.clipboard.writeText(text.trim()).then(function () {
      var original = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { button.textContent = original; button.classList.remove("copied"); }, 1500);
    });
  });

  // Dialogs: an element with data-open-dialog="#id" shows that <dialog>.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.querySelector(opener.getAttribute("data-open-dialog"));
      if (dialog && dialog.showModal) { event.preventDefault(); dialog.showModal(); }
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      var open = closer.closest("dialog");
      if (open) { event.preventDefault(); open.close(); }
    }
  });

  // Fragments htmx swaps into a <dialog> show it; a fragment marked
  // data-dialog-done (a finished edit or top-up) closes it again.
  document.addEventListener("htmx:afterSwap", function (event) {
    var dialog = event.target.closest && event.target.closest("dialog");
    if (!dialog) return;
    if (dialog.querySelector("[data-dialog-done]")) {
      if (dialog.open) dialog.close();
    } else if (!dialog.open && dialog.showModal) {
      dialog.showModal();
    }
  });

  // Disable a submitted form's buttons so a double click sends once
  // (the server still refuses a second use of the form's one-time token).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("data-no-disable")) return;
    setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    }, 0);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target.closest && event.target.closest("form");
    if (form) form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; });
  });
})();

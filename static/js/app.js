// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  // A page that answers a POST (a created or revealed key) names a safe URL for
  // itself, so a reload opens that page instead of offering to resend the form.
  var replaceUrl = document.body && document.body.getAttribute("data-replace-url");
  if (replaceUrl && window.history && history.replaceState) {
    history.replaceState(null, "", replaceUrl);
  }

  // The language menu brings the person back to the page's address; after htmx has moved it
  // (a pager, a filter pushed into history, or back and forward) that is the address now shown.
  function followAddress() {
    var here = window.location.pathname + window.location.search;
    document.querySelectorAll(".language-menu input[name=next]").forEach(function (field) { field.value = here; });
  }
  document.addEventListener("htmx:pushedIntoHistory", followAddress);
  window.addEventListener("popstate", followAddress);

  // Keyboard focus: a dialog starts at its first field (or the first field in error);
  // a form that came back with errors puts focus on the first of them.
  function focusFirstField(container) {
    var field = container.querySelector("[aria-invalid=true]") ||
      container.querySelector("input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled])");
    if (field) { field.focus(); return true; }
    var heading = container.querySelector("h1, h2");
    if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
    return false;
  }
  function focusFirstError(container) {
    var invalid = container.querySelector("[aria-invalid=true]");
    if (invalid) invalid.focus();
  }
  focusFirstError(document);
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target.closest && event.target.closest("dialog")) return;
    // The document, not the event's target: an outerHTML swap's target is the element it replaced.
    focusFirstError(document);
    // A swap that replaced the focused control (e.g. "Reveal key") hands focus to the new content.
    if (!document.activeElement || document.activeElement === document.body) {
      var next = document.querySelector("[data-autofocus]");
      if (next) next.focus();
    }
  });

  // Sorting a table keeps focus on the sort link that was used, in the freshly swapped table.
  var sortColumn = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var link = event.target.closest && event.target.closest("[data-sort-column]");
    sortColumn = link ? link.getAttribute("data-sort-column") : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!sortColumn) return;
    var link = document.querySelector('[data-sort-column="' + sortColumn + '"]');
    sortColumn = null;
    if (link) link.focus();
  });

  // Controls that need JavaScript (copy, dismiss) are hidden in the HTML and shown here.
  // A shortened id in a table (data-copyable: request ids, key ids) gets a small copy button after it.
  function showScriptControls(root) {
    root.querySelectorAll("[data-copy-target][hidden], [data-dismiss-toast][hidden]").forEach(function (control) {
      control.hidden = false;
    });
    root.querySelectorAll("[data-copyable]").forEach(function (value) {
      if (value.nextElementSibling && value.nextElementSibling.matches(".copy-inline")) return;
      var text = (value.getAttribute("title") || value.textContent).trim();
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-inline";
      button.setAttribute("data-copy-text", text);
      button.setAttribute("aria-label", interpolate(gettext("Copy %s"), [text]));
      button.title = gettext("Copy");
      value.insertAdjacentElement("afterend", button);
    });
  }
  showScriptControls(document);
  document.addEventListener("htmx:load", function (event) { showScriptControls(event.detail.elt.parentNode || document); });

  // Toasts stay until dismissed with their ×, except success toasts: they go by themselves
  // after a few seconds (not while the pointer or the keyboard is on them).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss-toast]");
    if (button) button.closest(".toast").remove();
  });
  var SUCCESS_TOAST_SECONDS = 6;
  function dismissSuccessToasts(root) {
    root.querySelectorAll(".toast-success:not([data-timed])").forEach(function (toast) {
      toast.setAttribute("data-timed", "true");
      (function wait() {
        setTimeout(function () {
          if (toast.matches(":hover") || toast.contains(document.activeElement)) { wait(); return; }
          toast.remove();
        }, SUCCESS_TOAST_SECONDS * 1000);
      })();
    });
  }
  dismissSuccessToasts(document);
  document.addEventListener("htmx:load", function () { dismissSuccessToasts(document); });

  // Every htmx request shows that it is under way: its trigger (a button or link, or a form's
  // submit buttons) is disabled and marked busy until the answer comes. The form's values are
  // already gathered when this runs, so the pressed button's name still goes with them.
  function busyControls(element) {
    if (!element || !element.matches) return [];
    if (element.matches("form")) return Array.prototype.slice.call(element.querySelectorAll("button:not([type=button]), input[type=submit]"));
    if (element.matches("button, a, input[type=submit]")) return [element];
    return [];
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var controls = busyControls(event.detail.elt);
    controls.forEach(function (control) {
      control.setAttribute("aria-busy", "true");
      if (control.tagName === "A") control.setAttribute("aria-disabled", "true"); else control.disabled = true;
    });
    event.detail.elt.busyControls = controls;
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    (event.detail.elt.busyControls || []).forEach(function (control) {
      control.removeAttribute("aria-busy");
      if (control.tagName === "A") control.removeAttribute("aria-disabled"); else control.disabled = false;
    });
    event.detail.elt.busyControls = [];
  });

  // Copy buttons: <button data-copy-target="#id"> copies that element's text, <button data-copy-text>
  // its own attribute (the small buttons above). "Copied" is announced through a polite live region,
  // made at load so that screen readers already watch it; a labelled button shows it, an icon a tick.
  var copyStatus = document.createElement("div");
  copyStatus.className = "visually-hidden";
  copyStatus.setAttribute("role", "status");
  document.body.appendChild(copyStatus);
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target], [data-copy-text]");
    if (!button || !navigator.clipboard) return;
    var text = button.getAttribute("data-copy-text");
    if (text === null) {
      var target = document.querySelector(button.getAttribute("data-copy-target"));
      if (!target) return;
      text = target.value !== undefined && target.tagName !== "CODE" && target.tagName !== "PRE" ? target.value : target.textContent;
    }
    navigator.clipboard.writeText(text.trim()).then(function () {
      var original = button.textContent;
      if (original) button.textContent = gettext("Copied");
      button.classList.add("copied");
      copyStatus.textContent = "";
      setTimeout(function () { copyStatus.textContent = gettext("Copied"); }, 50);
      setTimeout(function () { button.textContent = original; button.classList.remove("copied"); copyStatus.textContent = ""; }, 1500);
    });
  });

  // Dialogs: an element with data-open-dialog="#id" shows that <dialog>.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.querySelector(opener.getAttribute("data-open-dialog"));
      if (dialog && dialog.showModal) { event.preventDefault(); dialog.showModal(); focusFirstField(dialog); }
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      var open = closer.closest("dialog");
      if (open) { event.preventDefault(); open.close(); }
    }
  });

  // Fragments htmx swaps into a <dialog> show it; a fragment marked
  // data-dialog-done (a finished edit or top-up) closes it again. On settle, not on swap:
  // htmx binds the new form's hx- attributes while settling, and a field focused before
  // that lets a quick Enter submit the form as a plain page instead of in the dialog.
  document.addEventListener("htmx:afterSettle", function (event) {
    var dialog = event.target.closest && event.target.closest("dialog");
    if (!dialog) return;
    if (dialog.querySelector("[data-dialog-done]")) {
      if (dialog.open) dialog.close();
    } else {
      // Settling comes a moment after the swap: a person who has already tabbed into the
      // new content of an open dialog keeps their place (taking focus back would make
      // their Enter do nothing).
      var active = document.activeElement;
      var keepFocus = dialog.open && active && active !== dialog && dialog.contains(active);
      if (!dialog.open && dialog.showModal) dialog.showModal();
      if (!keepFocus) focusFirstField(dialog);
    }
  });

  // Disable a submitted form's buttons so a double click sends once
  // (the server still refuses a second use of the form's one-time token).
  // A form that moves money waits for derouter: its status line says so until the answer comes.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("data-no-disable")) return;
    var note = form.querySelector("[data-wait-note]");
    if (note) note.textContent = note.getAttribute("data-wait-note");
    setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    }, 0);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target.closest && event.target.closest("form");
    if (!form) return;
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; });
    var note = form.querySelector("[data-wait-note]");
    if (note) note.textContent = "";
  });

  // The top bar's disclosure menus ("More", the account, a phone's "Menu") open as <details> do without this;
  // it adds what people expect of a menu: Escape closes it (focus back on its summary),
  // a click elsewhere closes it, and opening one closes the other.
  var navMenus = document.querySelectorAll(".nav-menu, .nav-pages");
  function closeNavMenus(except) {
    navMenus.forEach(function (menu) { if (menu !== except) menu.open = false; });
  }
  navMenus.forEach(function (menu) {
    menu.addEventListener("toggle", function () { if (menu.open) closeNavMenus(menu); });
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest(".nav-menu, .nav-pages")) closeNavMenus(null);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector(".nav-menu[open], .nav-pages[open]");
    if (!open) return;
    open.open = false;
    open.querySelector("summary").focus();
  });
})();

// The control center's few lines of script: copy buttons, and the live deliveries list kept
// in place as it updates. Everything else is htmx or plain HTML forms, and works without this
// file (the live list then swaps its whole body).
(function () {
  "use strict";

  // The live deliveries list: htmx asks for its rows every 2 s. Rather than swap the whole
  // <tbody> (focus fell to <body>, U2 of issue 25), merge the answer into it: new rows go in
  // where they belong, rows still listed keep their element and get their changed cells,
  // rows no longer listed go. A cell holding the focus is left as it is until it loses it.
  function rowKey(row) {
    return row.getAttribute("data-delivery") || "text:" + row.textContent;
  }

  function mergeRows(tbody, html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var fresh = template.content.querySelector("tbody");
    if (!fresh) { return false; }
    var focused = document.activeElement;
    var holdsFocus = function (node) { return focused && node.contains(focused); };
    var shown = {};
    Array.prototype.forEach.call(tbody.children, function (row) { shown[rowKey(row)] = row; });
    var kept = [];
    var previous = null;
    Array.prototype.forEach.call(fresh.children, function (row) {
      var old = shown[rowKey(row)];
      if (old) {
        Array.prototype.forEach.call(old.children, function (cell, index) {
          var next = row.children[index];
          if (next && cell.innerHTML !== next.innerHTML && !holdsFocus(cell)) {
            cell.innerHTML = next.innerHTML;
          }
        });
      } else {
        old = document.importNode(row, true);
        if (previous) { previous.after(old); } else { tbody.prepend(old); }
      }
      kept.push(old);
      previous = old;
    });
    Array.prototype.slice.call(tbody.children).forEach(function (row) {
      if (kept.indexOf(row) < 0 && !holdsFocus(row)) { row.remove(); }
    });
    return true;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.hasAttribute("data-merge-rows")) { return; }
    if (!event.detail.xhr || event.detail.xhr.status !== 200) { return; }
    if (mergeRows(target, event.detail.serverResponse)) { event.detail.shouldSwap = false; }
  });

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    document.body.removeChild(area);
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) { return; }
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    copy(button.dataset.copy).then(function () {
      button.textContent = "Copied ✓";
      button.classList.add("copied");
      button.dataset.copied = "true";
    }, function () {
      button.textContent = "Select and copy";
    });
    window.setTimeout(function () {
      button.textContent = label;
      button.classList.remove("copied");
    }, 2000);
  });
})();

// The control center's few lines of script: copy buttons, and the live regions (the
// deliveries list, a pending delivery's page) kept in place as they update. Everything else is
// htmx or plain HTML forms, and works without this file (live regions then swap whole).
(function () {
  "use strict";

  // Live regions: an element marked data-merge that htmx polls (hx-trigger="every ...": the
  // deliveries list's rows, a pending delivery's page) gets each answer merged into it rather
  // than swapped whole, which dropped the focus to <body>, closed the attempts opened and lost
  // the selection (U2 of issue 25). Children are matched by key (the attribute named by
  // data-merge's value, else their id), the others by kind in order: a matched node keeps its
  // element and gets only its changed attributes and text, new nodes go in where they belong,
  // nodes no longer sent go. The element holding the focus is left as it is (and kept) until it
  // loses it; a <details> keeps the reader's open or closed. Without this file htmx swaps.
  function keyOf(node, keyName) {
    if (node.nodeType !== 1) { return null; }
    return node.getAttribute(keyName) || node.id || null;
  }

  function holds(node, focused) { return !!focused && node.contains(focused); }

  function sameKind(a, b) { return a.nodeType === b.nodeType && a.nodeName === b.nodeName; }

  function readersOwn(element, name) { return name === "open" && element.tagName === "DETAILS"; }

  function mergeAttributes(old, fresh) {
    Array.prototype.slice.call(old.attributes).forEach(function (attribute) {
      if (!fresh.hasAttribute(attribute.name) && !readersOwn(old, attribute.name)) {
        old.removeAttribute(attribute.name);
      }
    });
    Array.prototype.forEach.call(fresh.attributes, function (attribute) {
      if (!readersOwn(old, attribute.name) && old.getAttribute(attribute.name) !== attribute.value) {
        old.setAttribute(attribute.name, attribute.value);
      }
    });
  }

  function mergeNode(old, fresh, context) {
    if (old.nodeType !== 1) {
      if (old.nodeValue !== fresh.nodeValue) { old.nodeValue = fresh.nodeValue; }
      return;
    }
    if (old === context.focused) { return; }
    mergeAttributes(old, fresh);
    mergeChildren(old, fresh, context);
  }

  function findMatch(parent, next, cursor, context, used) {
    var key = keyOf(next, context.key);
    if (key !== null) {
      var keyed = context.keyed.get(parent).get(key);
      return keyed && !used.has(keyed) && sameKind(keyed, next) ? keyed : null;
    }
    for (var node = cursor; node; node = node.nextSibling) {
      if (!used.has(node) && keyOf(node, context.key) === null && sameKind(node, next)) {
        return node;
      }
    }
    return null;
  }

  function mergeChildren(parent, fresh, context) {
    var keyed = new Map();
    Array.prototype.forEach.call(parent.children, function (child) {
      var key = keyOf(child, context.key);
      if (key !== null) { keyed.set(key, child); }
    });
    context.keyed.set(parent, keyed);
    var used = new Set();
    var previous = null;
    var cursor = parent.firstChild;
    Array.prototype.slice.call(fresh.childNodes).forEach(function (next) {
      var place = previous ? previous.nextSibling : parent.firstChild;
      var match = findMatch(parent, next, cursor, context, used);
      if (match) {
        mergeNode(match, next, context);
        if (match !== place && holds(match, context.focused)) {
          // moving it would drop the focus: move the nodes before it after it instead
          var after = match.nextSibling;
          while (place && place !== match) {
            var following = place.nextSibling;
            parent.insertBefore(place, after);
            place = following;
          }
        } else if (match !== place) {
          parent.insertBefore(match, place);
        }
        if (keyOf(next, context.key) === null) { cursor = match.nextSibling; }
      } else {
        match = document.importNode(next, true);
        parent.insertBefore(match, place);
        context.added.push(match);
      }
      used.add(match);
      previous = match;
    });
    Array.prototype.slice.call(parent.childNodes).forEach(function (node) {
      if (!used.has(node) && !holds(node, context.focused)) { parent.removeChild(node); }
    });
  }

  // what the screen shows stays put: the focused element if it is in view, else the first
  // keyed element in view, is put back where it was on screen (the browsers that anchor
  // scrolling have done so already: then there is nothing left to do)
  function anchorOf(region, context) {
    var visible = function (element) {
      var box = element.getBoundingClientRect();
      return box.height > 0 && box.bottom > 0 && box.top < window.innerHeight;
    };
    if (holds(region, context.focused) && context.focused !== region && visible(context.focused)) {
      return context.focused;
    }
    var keyed = region.querySelectorAll("[id]" + (context.key === "id" ? "" : ", [" + context.key + "]"));
    for (var i = 0; i < keyed.length; i += 1) {
      if (visible(keyed[i])) { return keyed[i]; }
    }
    return null;
  }

  function merge(region, fresh) {
    var context = {
      key: region.getAttribute("data-merge") || "id",
      focused: document.activeElement,
      keyed: new Map(),
      added: []
    };
    var anchor = anchorOf(region, context);
    var top = anchor ? anchor.getBoundingClientRect().top : 0;
    mergeAttributes(region, fresh);
    mergeChildren(region, fresh, context);
    if (anchor && anchor.isConnected) {
      var moved = anchor.getBoundingClientRect().top - top;
      if (Math.abs(moved) >= 1) { window.scrollBy(0, moved); }
    }
    if (window.htmx) {
      context.added.forEach(function (node) { if (node.nodeType === 1) { window.htmx.process(node); } });
    }
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.hasAttribute("data-merge") || !target.id) { return; }
    if (!event.detail.xhr || event.detail.xhr.status !== 200) { return; }
    var template = document.createElement("template");
    template.innerHTML = event.detail.serverResponse;
    var fresh = template.content.querySelector("#" + CSS.escape(target.id));
    if (!fresh) { return; }
    merge(target, fresh);
    event.detail.shouldSwap = false;
  });

  // a region no longer live (its delivery done) answered without hx-trigger: htmx's timer
  // still runs, but asks for nothing more
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail.elt;
    if (source && source.hasAttribute("data-merge") && !source.hasAttribute("hx-trigger")) {
      event.preventDefault();
    }
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

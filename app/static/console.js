/* Nurture console: progressive enhancement only. Every page works without it.
   - funnel editor: line numbers, validation as you type (debounced POST to the same
     validator as `flask funnels validate`), problems that jump to their line;
   - forms with data-confirm ask before they submit. */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  function lineStart(text, line) {
    var index = 0;
    for (var i = 1; i < line; i++) {
      var next = text.indexOf("\n", index);
      if (next === -1) return text.length;
      index = next + 1;
    }
    return index;
  }

  function goToLine(textarea, line) {
    if (!line) return;
    var text = textarea.value;
    var start = lineStart(text, line);
    var end = text.indexOf("\n", start);
    textarea.focus();
    textarea.setSelectionRange(start, end === -1 ? text.length : end);
    var lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 20;
    textarea.scrollTop = Math.max(0, (line - 4) * lineHeight);
  }

  function setupEditor(textarea) {
    var list = document.getElementById("problems");
    var status = document.getElementById("problems-status");
    var gutter = document.createElement("pre");
    gutter.className = "gutter";
    gutter.setAttribute("aria-hidden", "true");
    textarea.parentNode.insertBefore(gutter, textarea);
    var problemLines = {};

    function drawGutter() {
      var count = textarea.value.split("\n").length;
      var html = [];
      for (var i = 1; i <= count; i++) {
        html.push(problemLines[i] ? '<span class="has-problem">' + i + "</span>" : String(i));
      }
      gutter.innerHTML = html.join("\n");
      gutter.scrollTop = textarea.scrollTop;
    }

    function show(problems) {
      problemLines = {};
      list.innerHTML = "";
      problems.forEach(function (p) {
        if (p.line) problemLines[p.line] = true;
        var item = document.createElement("li");
        var jump = document.createElement("button");
        jump.type = "button";
        jump.className = "link";
        jump.dataset.line = p.line || "";
        jump.textContent = p.line ? "Line " + p.line : "Whole file";
        item.appendChild(jump);
        if (p.field) {
          var code = document.createElement("code");
          code.textContent = p.field;
          item.appendChild(document.createTextNode(" "));
          item.appendChild(code);
        }
        item.appendChild(document.createTextNode(": " + p.message));
        list.appendChild(item);
      });
      status.className = problems.length ? "bad" : "good";
      status.textContent = problems.length
        ? plural(problems.length, "problem") + " to fix."
        : "No problems: this definition is valid.";
      drawGutter();
    }

    var timer = null;
    var sequence = 0;
    function validate() {
      var mine = ++sequence;
      fetch(textarea.dataset.validateUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify({ source: textarea.value })
      }).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      }).then(function (result) {
        if (mine === sequence) show(result.problems);  // a slow old answer must not win
      }).catch(function () {
        status.className = "muted";
        status.textContent = "Could not check just now; press Check to validate.";
      });
    }

    textarea.addEventListener("input", function () {
      drawGutter();
      clearTimeout(timer);
      timer = setTimeout(validate, 400);
    });
    textarea.addEventListener("scroll", function () { gutter.scrollTop = textarea.scrollTop; });
    list.addEventListener("click", function (event) {
      var target = event.target.closest("button[data-line]");
      if (target) goToLine(textarea, parseInt(target.dataset.line, 10));
    });
    Array.prototype.forEach.call(list.querySelectorAll("button[data-line]"), function (b) {
      if (b.dataset.line) problemLines[b.dataset.line] = true;
    });
    drawGutter();
    if (!list.children.length) validate();  // say at once whether the text is valid
  }

  document.addEventListener("DOMContentLoaded", function () {
    var editor = document.querySelector("textarea[data-validate-url]");
    if (editor) setupEditor(editor);
    document.addEventListener("submit", function (event) {
      var message = event.target.getAttribute("data-confirm");
      if (message && !window.confirm(message)) event.preventDefault();
    });
  });
})();

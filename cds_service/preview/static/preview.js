// The try-it panel: send a demonstration patient or a pasted Bundle / CDS Hooks request to
// POST /preview/evaluate and draw the cards as an EHR shows them. Every text goes in with
// textContent; the only HTML inserted is the card detail (sanitised on the server) and the chart SVG
// (built and escaped on the server).
(function () {
  "use strict";

  var STATE_KEY = "osteo-cds-preview-input";
  var ui = JSON.parse(document.getElementById("ui-texts").textContent);
  var lang = document.body.getAttribute("data-lang") || "en";
  var form = document.getElementById("try-form");
  var demo = document.getElementById("demo");
  var textarea = document.getElementById("document");
  var upload = document.getElementById("upload");
  var statusBox = document.getElementById("status");
  var results = document.getElementById("results");
  var cardsBox = document.getElementById("cards");
  var chartBox = document.getElementById("chart");
  var download = document.getElementById("chart-download");
  var demoDescription = document.getElementById("demo-description");
  var lastInput = null; // {example: id} or {text: "..."}
  var chartUrl = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setStatus(message, isError) {
    statusBox.textContent = message || "";
    statusBox.className = "status" + (isError ? " status-error" : "");
  }

  function indicatorBadge(indicator) {
    var badge = el("span", "indicator indicator-" + indicator);
    var icon = el("span", "indicator-icon");
    icon.setAttribute("aria-hidden", "true");
    badge.appendChild(icon);
    badge.appendChild(el("span", "indicator-label", ui["indicator_" + indicator] || indicator));
    return badge;
  }

  function renderSuggestions(card) {
    if (!card.suggestions.length) return null;
    var box = el("div", "card-suggestions");
    box.appendChild(el("h5", null, ui.suggestions));
    var buttons = el("div", "suggestion-buttons");
    var preview = el("div", "suggestion-preview");
    preview.hidden = true;
    card.suggestions.forEach(function (suggestion) {
      var button = el("button", "suggestion" + (suggestion.is_recommended ? " recommended" : ""), suggestion.label);
      button.type = "button";
      button.setAttribute("aria-expanded", "false");
      button.addEventListener("click", function () {
        var open = button.getAttribute("aria-expanded") === "true";
        Array.prototype.forEach.call(buttons.children, function (b) { b.setAttribute("aria-expanded", "false"); });
        preview.textContent = "";
        if (open) { preview.hidden = true; return; }
        button.setAttribute("aria-expanded", "true");
        suggestion.actions.forEach(function (action) {
          preview.appendChild(el("p", "would-create",
            ui.would_create + ": " + (action.resource_type || "?") + " — " + (action.description || action.type)));
          if (action.resource) {
            preview.appendChild(el("pre", "resource-json", JSON.stringify(action.resource, null, 2)));
          }
        });
        preview.appendChild(el("p", "note", ui.no_action_note));
        preview.hidden = false;
      });
      buttons.appendChild(button);
    });
    box.appendChild(buttons);
    box.appendChild(preview);
    return box;
  }

  function renderLinks(card) {
    if (!card.links.length && !card.smart_links) return null;
    var box = el("div", "card-links");
    box.appendChild(el("h5", null, ui.links));
    var list = el("ul");
    card.links.forEach(function (link) {
      var item = el("li");
      var a = el("a", null, link.label || link.url);
      a.href = link.url; // http(s) only, checked on the server
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      item.appendChild(a);
      list.appendChild(item);
    });
    for (var i = 0; i < card.smart_links; i += 1) list.appendChild(el("li", "note", ui.smart_link));
    box.appendChild(list);
    return box;
  }

  function renderOverride(card) {
    if (!card.override_reasons.length) return null;
    var box = el("div", "card-override");
    var id = "override-" + Math.random().toString(36).slice(2);
    var label = el("label", null, ui.override_heading);
    label.htmlFor = id;
    var select = el("select");
    select.id = id;
    select.appendChild(el("option", null, "—"));
    card.override_reasons.forEach(function (reason) { select.appendChild(el("option", null, reason)); });
    var note = el("p", "note");
    select.addEventListener("change", function () {
      note.textContent = select.selectedIndex > 0 ? ui.override_note : "";
    });
    box.appendChild(label);
    box.appendChild(select);
    box.appendChild(note);
    return box;
  }

  function renderCard(card) {
    var article = el("article", "card card-" + card.indicator);
    article.setAttribute("data-topic", card.topic || "");
    article.setAttribute("data-indicator", card.indicator || "");
    var header = el("header", "card-header");
    header.appendChild(indicatorBadge(card.indicator));
    header.appendChild(el("h4", "card-summary", card.summary));
    article.appendChild(header);
    var detail = el("div", "card-detail");
    detail.innerHTML = card.detail_html; // markdown without raw HTML, sanitised by nh3 on the server
    article.appendChild(detail);
    [renderSuggestions(card), renderLinks(card), renderOverride(card)].forEach(function (part) {
      if (part) article.appendChild(part);
    });
    var footer = el("footer", "card-source");
    footer.appendChild(document.createTextNode(ui.source + ": "));
    if (card.source_url) {
      var a = el("a", null, card.source_label);
      a.href = card.source_url;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      footer.appendChild(a);
    } else {
      footer.appendChild(document.createTextNode(card.source_label || ""));
    }
    footer.appendChild(document.createTextNode(" · " + ui.topic + ": "));
    footer.appendChild(el("code", null, card.topic));
    article.appendChild(footer);
    if (card.explanation_html) {
      var full = el("details", "card-explanation");
      full.appendChild(el("summary", null, ui.show_explanation));
      var body = el("div", "card-explanation-body");
      body.innerHTML = card.explanation_html; // markdown without raw HTML, sanitised by nh3 on the server
      full.appendChild(body);
      article.appendChild(full);
    }
    var raw = el("details", "card-json");
    raw.appendChild(el("summary", null, ui.show_json));
    raw.appendChild(el("pre", null, JSON.stringify(card.raw, null, 2)));
    article.appendChild(raw);
    return article;
  }

  function renderChart(svg) {
    if (chartUrl) { URL.revokeObjectURL(chartUrl); chartUrl = null; }
    chartBox.textContent = "";
    if (!svg) {
      chartBox.appendChild(el("p", "note", ui.chart_unavailable));
      download.hidden = true;
      return;
    }
    chartBox.innerHTML = svg; // built on the server, every text XML-escaped
    chartUrl = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
    download.href = chartUrl;
    download.hidden = false;
  }

  function render(payload) {
    cardsBox.textContent = "";
    if (payload.notes.indexOf("no_prefetch") >= 0) cardsBox.appendChild(el("p", "note", ui.no_prefetch));
    if (!payload.cards.length) cardsBox.appendChild(el("p", "no-cards", ui.no_cards));
    payload.cards.forEach(function (card) { cardsBox.appendChild(renderCard(card)); });
    renderChart(payload.chart_svg);
    results.hidden = false;
    results.setAttribute("data-topics", payload.topics.join(" "));
  }

  function evaluate(input) {
    var body;
    if (input.example) {
      body = { example: input.example, lang: lang };
    } else {
      var parsed;
      try {
        parsed = JSON.parse(input.text);
      } catch (error) {
        setStatus(ui.invalid_json + ": " + error.message, true);
        return Promise.resolve();
      }
      body = { document: parsed, lang: lang };
    }
    lastInput = input;
    setStatus(ui.loading, false);
    document.body.setAttribute("data-state", "loading");
    return fetch("preview/evaluate", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().catch(function () { return { message: response.statusText }; })
        .then(function (payload) {
          if (!response.ok) throw new Error(payload.message || response.statusText);
          return payload;
        });
    }).then(function (payload) {
      render(payload);
      setStatus("", false);
      document.body.setAttribute("data-state", "done");
    }).catch(function (error) {
      results.hidden = true;
      setStatus(ui.request_failed + ": " + error.message, true);
      document.body.setAttribute("data-state", "error");
    });
  }

  function showDemoHint() {
    var option = demo.options[demo.selectedIndex];
    var parts = [];
    var description = option ? option.getAttribute("data-description") : "";
    if (description) parts.push(description);
    var expected = option ? option.getAttribute("data-expected") : "";
    if (expected) parts.push(ui.expected_topics + ": " + expected.split(" ").join(", "));
    demoDescription.textContent = parts.join(" — ");
    demoDescription.hidden = parts.length === 0;
  }

  demo.addEventListener("change", function () {
    showDemoHint();
    if (!demo.value) return;
    textarea.value = "";
    upload.value = "";
    evaluate({ example: demo.value });
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (textarea.value.trim()) {
      evaluate({ text: textarea.value });
    } else if (demo.value) {
      evaluate({ example: demo.value });
    }
  });

  textarea.addEventListener("input", function () {
    if (textarea.value.trim()) { demo.value = ""; showDemoHint(); }
  });

  upload.addEventListener("change", function () {
    var file = upload.files && upload.files[0];
    if (!file) return;
    // Busy from the moment a file is chosen: reading it is asynchronous too.
    document.body.setAttribute("data-state", "loading");
    file.text().then(function (text) {
      textarea.value = text;
      demo.value = "";
      showDemoHint();
      evaluate({ text: text });
    });
  });

  document.getElementById("clear").addEventListener("click", function () {
    textarea.value = "";
    upload.value = "";
    demo.value = "";
    showDemoHint();
    lastInput = null;
    results.hidden = true;
    cardsBox.textContent = "";
    renderChart(null);
    setStatus("", false);
    document.body.setAttribute("data-state", "idle");  // nothing shown: not "done" with an old answer
  });

  // The language switch re-renders the page in the other language; the input goes along.
  Array.prototype.forEach.call(document.querySelectorAll("nav.language a"), function (link) {
    link.addEventListener("click", function () {
      try {
        if (lastInput) sessionStorage.setItem(STATE_KEY, JSON.stringify(lastInput));
        else sessionStorage.removeItem(STATE_KEY);
      } catch (error) { /* storage off: the new page starts empty */ }
    });
  });

  function restore() {
    var saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(STATE_KEY) || "null");
      sessionStorage.removeItem(STATE_KEY);
    } catch (error) { saved = null; }
    var wanted = new URLSearchParams(window.location.search).get("example");
    if (!saved && wanted) saved = { example: wanted };
    if (!saved) return;
    if (saved.example) {
      demo.value = saved.example;
      showDemoHint();
      evaluate({ example: saved.example });
    } else if (typeof saved.text === "string") {
      textarea.value = saved.text;
      evaluate({ text: saved.text });
    }
  }

  document.body.setAttribute("data-ready", "true");
  restore();
})();

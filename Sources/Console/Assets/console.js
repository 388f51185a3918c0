// imaged console: small progressive enhancements. Every page works without this file; the
// Content-Security-Policy allows only this script, so nothing runs inline.

// Forms that change something serious ask first: <form data-confirm="Delete this image?">.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// The filter bar applies a select's choice at once.
for (const select of document.querySelectorAll("form.filters select")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}

// pecgate admin page: progressive enhancement only; every view works without it.
'use strict';
// Ask before irreversible actions (forms marked data-confirm).
document.addEventListener('submit', function (e) {
  var msg = e.target.getAttribute('data-confirm');
  if (msg && !window.confirm(msg)) {
    e.preventDefault();
  }
});
// Filters apply as soon as a select changes.
document.addEventListener('change', function (e) {
  var el = e.target;
  if (el.hasAttribute && el.hasAttribute('data-autosubmit') && el.form) {
    el.form.submit();
  }
});

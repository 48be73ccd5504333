// Passkeys: the browser half of enrolling a passkey and of signing in
// with one. A form marked data-passkey="create" or "get" carries the
// server's WebAuthn options in data-options; on submit this asks the
// authenticator, puts its answer (JSON) in the form's "credential"
// field and sends the form on as an ordinary POST. Forms stay hidden
// where the browser has no WebAuthn, so pages work without it.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) {
    return;
  }
  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    var box = form.closest("[data-passkey-box]") || form;
    box.hidden = false;
    var status = box.querySelector("[data-passkey-status]");
    form.addEventListener("submit", function (ev) {
      if (form.dataset.answered === "1") {
        return;
      }
      ev.preventDefault();
      var options = JSON.parse(form.dataset.options);
      var ask = form.dataset.passkey === "create"
        ? navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey) })
        : navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey) });
      ask.then(function (cred) {
        form.elements.credential.value = JSON.stringify(cred.toJSON());
        form.dataset.answered = "1";
        form.submit();
      }).catch(function (err) {
        if (status) {
          status.textContent = "The passkey was not used (" + err.name + "). Try again.";
        }
      });
    });
  });
})();

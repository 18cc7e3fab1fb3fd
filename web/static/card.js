// The billing page's card form: Stripe.js collects the card and confirms the SetupIntent
// with Stripe directly, so the card number never reaches Billbox; the form then posts only
// the SetupIntent id, which the server re-reads from Stripe before using it.
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var stripe = Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var errors = document.getElementById("card-errors");
  form.addEventListener("submit", function (event) {
    if (form.elements.setup_intent.value) { return; }
    event.preventDefault();
    errors.textContent = "";
    stripe.confirmCardSetup(form.dataset.clientSecret, { payment_method: { card: card } })
      .then(function (result) {
        if (result.error) {
          errors.textContent = result.error.message || String(result.error);
          return;
        }
        form.elements.setup_intent.value = result.setupIntent.id;
        form.submit();
      });
  });
})();

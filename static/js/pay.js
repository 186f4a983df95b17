// The payment page: Stripe's Payment Element in our form; Stripe sends the customer back to the return page.
(function () {
  "use strict";
  const form = document.getElementById("payment-form");
  if (!form || typeof Stripe === "undefined") return;
  const stripe = Stripe(form.dataset.publishableKey);
  const elements = stripe.elements({ clientSecret: form.dataset.clientSecret });
  elements.create("payment").mount("#payment-element");
  const message = document.getElementById("payment-message");
  const button = document.getElementById("pay-button");
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    const result = await stripe.confirmPayment({ elements: elements, confirmParams: { return_url: form.dataset.returnUrl } });
    // Only reached when the payment could not be confirmed (otherwise Stripe redirects).
    if (result && result.error) {
      message.textContent = result.error.message || "The payment did not go through.";
      message.hidden = false;
    }
    button.disabled = false;
  });
})();

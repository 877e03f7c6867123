// The demo shop's own behaviour (basket, product page, account form, checkout). Nothing
// here is needed for covisit to work; it only gives an agent something to co-browse.
// Calls into covisit go through window.Covisit, which the snippet in /covisit-init.js
// defines (absent on the payment provider's page).
(function () {
  'use strict';

  var CATALOG = {
    tent: { name: 'Trail Runner 3 tent', price: 249, blurb: 'Two-person, 1.9 kg, pitches in four minutes. A tent for fast, light trips in three seasons.', specs: ['Weight: 1.9 kg', 'Sleeps: 2', 'Packed size: 45 × 15 cm'] },
    pack: { name: 'Summit 40 L backpack', price: 139, blurb: 'Ventilated back, rain cover included. Carries a weekend comfortably.', specs: ['Volume: 40 L', 'Weight: 1.3 kg', 'Back length: adjustable'] },
    boots: { name: 'Ridge hiking boots', price: 179, blurb: 'Waterproof leather, grippy soles, broken in from day one.', specs: ['Upper: waterproof leather', 'Sole: lugged rubber', 'Weight: 1.4 kg a pair'] },
  };
  var BASKET_KEY = 'acme.basket';

  function $(id) { return document.getElementById(id); }
  function covisit() {
    if (typeof window.Covisit === 'function') window.Covisit.apply(null, arguments);
  }

  function readBasket() {
    try {
      var b = JSON.parse(localStorage.getItem(BASKET_KEY) || '{}');
      return b && typeof b === 'object' ? b : {};
    } catch (e) {
      return {};
    }
  }
  function writeBasket(b) {
    try { localStorage.setItem(BASKET_KEY, JSON.stringify(b)); } catch (e) { /* private mode */ }
    showCount();
  }
  function basketItems(b) {
    return Object.keys(b).filter(function (k) { return CATALOG[k] && b[k] > 0; });
  }
  function showCount() {
    var el = $('basket-count');
    if (!el) return;
    var b = readBasket();
    el.textContent = String(basketItems(b).reduce(function (n, k) { return n + b[k]; }, 0));
  }
  function euro(n) { return '€' + n; }

  // Add to basket buttons.
  document.addEventListener('click', function (e) {
    var btn = e.target.closest && e.target.closest('[data-add-to-basket]');
    if (!btn) return;
    var sku = btn.getAttribute('data-add-to-basket');
    if (!CATALOG[sku]) return;
    var qtyInput = $('qty');
    var qty = btn.id === 'add-product' && qtyInput ? Math.max(1, Math.min(9, parseInt(qtyInput.value, 10) || 1)) : 1;
    var b = readBasket();
    b[sku] = (b[sku] || 0) + qty;
    writeBasket(b);
    var notice = $('basket-notice');
    if (notice) notice.textContent = CATALOG[sku].name + ' added to your basket.';
  });

  var page = document.body.getAttribute('data-page');

  if (page === 'product') {
    var sku = new URLSearchParams(location.search).get('sku');
    var item = CATALOG[sku];
    if (item && sku !== 'tent') {
      $('product').setAttribute('data-sku', sku);
      $('product-name').textContent = item.name;
      $('product-price').textContent = euro(item.price);
      $('product-blurb').textContent = item.blurb;
      var specs = $('product-specs');
      specs.replaceChildren.apply(specs, item.specs.map(function (s) {
        var li = document.createElement('li');
        li.textContent = s;
        return li;
      }));
      $('add-product').setAttribute('data-add-to-basket', sku);
      document.title = item.name + ' · Acme Outdoor';
      var art = document.querySelector('#product-art svg');
      if (art) art.setAttribute('aria-label', item.name);
    }
  }

  if (page === 'account') {
    var form = $('account-form');
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var name = $('acct-name').value.trim();
      var email = $('acct-email').value.trim();
      // Identify the visitor so agents can find them by name or email. The password,
      // the card number and the account number never leave the browser.
      var identities = [name, email].filter(Boolean);
      covisit('updateVisitor', {
        callName: name || null,
        email: email || null,
        identities: identities.length ? identities : null,
      });
      $('account-saved').textContent = 'Saved. (Demo: only your name and email are shared with support.)';
    });
  }

  if (page === 'checkout' || page === 'payment') {
    var b = readBasket();
    var keys = basketItems(b);
    var total = keys.reduce(function (n, k) { return n + CATALOG[k].price * b[k]; }, 0);
    if (page === 'checkout') {
      var body = $('basket-body');
      if (keys.length) {
        body.replaceChildren.apply(body, keys.map(function (k) {
          var tr = document.createElement('tr');
          [CATALOG[k].name, String(b[k]), euro(CATALOG[k].price * b[k])].forEach(function (t) {
            var td = document.createElement('td');
            td.textContent = t;
            tr.appendChild(td);
          });
          return tr;
        }));
      }
      $('basket-total').textContent = euro(total);
    } else {
      $('pay-amount').textContent = euro(total);
    }
  }

  if (page === 'checkout') {
    // The payment provider's page has no covisit: announce the trip so a live session
    // waits 30 s for the visitor to come back instead of ending.
    $('to-payment').addEventListener('click', function (e) {
      if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      var href = this.href;
      covisit('expectDisconnect', { returnTimeSeconds: 30 });
      // Give the announcement a moment on the socket before the page goes away.
      setTimeout(function () { location.href = href; }, 150);
    });
  }

  if (page === 'thanks') {
    var order = $('order-number');
    if (order) order.textContent = 'AC-' + String(10000 + Math.floor(Math.random() * 90000));
    writeBasket({});
  }

  showCount();
})();

// Message catalogues (i18n/en.json, i18n/tr.json) and locale-aware numbers and times.
// Every word on screen comes from a catalogue: static text through data-i18n attributes,
// dynamic text through t(key, params). Numbers and times go through Intl with the locale.

const LOCALES = { en: "en-GB", tr: "tr-TR" };
export const LANGUAGES = Object.keys(LOCALES);

let lang = "en";
let messages = {};

export async function loadLanguage(next) {
  const chosen = LANGUAGES.includes(next) ? next : "en";
  const response = await fetch(`i18n/${chosen}.json`, { cache: "no-cache" });
  messages = await response.json();
  lang = chosen;
  document.documentElement.lang = chosen;
  return chosen;
}

export function language() {
  return lang;
}

export function locale() {
  return LOCALES[lang];
}

// t("tier.summary", {served: 3}) -> the message with {placeholders} filled in.
export function t(key, params = {}) {
  const text = messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

// Fill every [data-i18n] element's text (and title/aria-label variants) under root.
export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
}

export function number(value, digits = 1) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: 0 }).format(value);
}

// Power [W] as kW with one decimal, in the locale ("12,5 kW" in Turkish).
export function kw(watts) {
  return `${new Intl.NumberFormat(locale(), { minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(watts / 1000)} kW`;
}

export function kwh(wattHours) {
  return `${new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 }).format(wattHours / 1000)} kWh`;
}

export function percent(value) {
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 0 }).format(value / 100);
}

export function clock(unixSeconds) {
  return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" }).format(new Date(unixSeconds * 1000));
}

export function clockSeconds(unixSeconds) {
  return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(
    new Date(unixSeconds * 1000),
  );
}

// The catalogues: Serbian Cyrillic (default), Serbian Latin (transliterated from Cyrillic at
// run time with the standard one-to-one table; text only), English.
import cyrl from './sr-Cyrl.js';
import en from './en.js';

const TABLE = {
  А: 'A', Б: 'B', В: 'V', Г: 'G', Д: 'D', Ђ: 'Đ', Е: 'E', Ж: 'Ž', З: 'Z', И: 'I', Ј: 'J',
  К: 'K', Л: 'L', Љ: 'Lj', М: 'M', Н: 'N', Њ: 'Nj', О: 'O', П: 'P', Р: 'R', С: 'S', Т: 'T',
  Ћ: 'Ć', У: 'U', Ф: 'F', Х: 'H', Ц: 'C', Ч: 'Č', Џ: 'Dž', Ш: 'Š',
  а: 'a', б: 'b', в: 'v', г: 'g', д: 'd', ђ: 'đ', е: 'e', ж: 'ž', з: 'z', и: 'i', ј: 'j',
  к: 'k', л: 'l', љ: 'lj', м: 'm', н: 'n', њ: 'nj', о: 'o', п: 'p', р: 'r', с: 's', т: 't',
  ћ: 'ć', у: 'u', ф: 'f', х: 'h', ц: 'c', ч: 'č', џ: 'dž', ш: 'š',
};

/** Serbian Cyrillic → Latin; `{placeholders}` are ASCII and pass through. */
export function toLatin(text) {
  return Array.from(text, (ch) => TABLE[ch] ?? ch).join('');
}

const latn = Object.fromEntries(Object.entries(cyrl).map(([k, v]) => [k, toLatin(v)]));
latn.lang_name = 'Latinica';

export const LANGS = { 'sr-Cyrl': cyrl, 'sr-Latn': latn, en };

let current = 'sr-Cyrl';

export function setLang(lang) {
  if (LANGS[lang]) current = lang;
  document.documentElement.lang = current;
}

export function lang() {
  return current;
}

/** The text of `key` in the current language, `{name}` replaced from `args`. */
export function t(key, args = {}) {
  const text = LANGS[current][key] ?? LANGS['sr-Cyrl'][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(args[name] ?? ''));
}

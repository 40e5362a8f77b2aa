//! The portal's messages (Fluent): Serbian Cyrillic by default, Serbian Latin and English by a
//! visible switch. The Latin catalogue is the Cyrillic one transliterated (the official 1:1
//! correspondence), so the two can never drift apart.

use std::collections::HashMap;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

/// A language of the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// Serbian, Cyrillic (default).
    SerbianCyrillic,
    /// Serbian, Latin.
    SerbianLatin,
    /// English.
    English,
}

impl Language {
    /// All, in the order of the switch.
    pub const ALL: [Self; 3] = [Self::SerbianCyrillic, Self::SerbianLatin, Self::English];

    /// BCP 47 tag.
    pub fn tag(self) -> &'static str {
        match self {
            Self::SerbianCyrillic => "sr-Cyrl",
            Self::SerbianLatin => "sr-Latn",
            Self::English => "en",
        }
    }

    /// The name on the switch, in the language itself.
    pub fn own_name(self) -> &'static str {
        match self {
            Self::SerbianCyrillic => "Ћирилица",
            Self::SerbianLatin => "Latinica",
            Self::English => "English",
        }
    }

    /// The language of a tag, if it is one of ours.
    pub fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(tag))
    }
}

const CYRILLIC: &str = include_str!("../i18n/sr-Cyrl.ftl");
const ENGLISH: &str = include_str!("../i18n/en.ftl");

/// Serbian Cyrillic to Latin (the official alphabet correspondence).
pub fn transliterate(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let latin = match c {
            'А' => "A",
            'Б' => "B",
            'В' => "V",
            'Г' => "G",
            'Д' => "D",
            'Ђ' => "Đ",
            'Е' => "E",
            'Ж' => "Ž",
            'З' => "Z",
            'И' => "I",
            'Ј' => "J",
            'К' => "K",
            'Л' => "L",
            'Љ' => "Lj",
            'М' => "M",
            'Н' => "N",
            'Њ' => "Nj",
            'О' => "O",
            'П' => "P",
            'Р' => "R",
            'С' => "S",
            'Т' => "T",
            'Ћ' => "Ć",
            'У' => "U",
            'Ф' => "F",
            'Х' => "H",
            'Ц' => "C",
            'Ч' => "Č",
            'Џ' => "Dž",
            'Ш' => "Š",
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' => "g",
            'д' => "d",
            'ђ' => "đ",
            'е' => "e",
            'ж' => "ž",
            'з' => "z",
            'и' => "i",
            'ј' => "j",
            'к' => "k",
            'л' => "l",
            'љ' => "lj",
            'м' => "m",
            'н' => "n",
            'њ' => "nj",
            'о' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'ћ' => "ć",
            'у' => "u",
            'ф' => "f",
            'х' => "h",
            'ц' => "c",
            'ч' => "č",
            'џ' => "dž",
            'ш' => "š",
            other => {
                out.push(other);
                continue;
            }
        };
        out.push_str(latin);
    }
    out
}

/// All three catalogues, parsed once.
pub struct Catalog {
    bundles: HashMap<Language, FluentBundle<FluentResource>>,
    ids: Vec<String>,
}

/// A problem in a catalogue.
#[derive(Debug, thiserror::Error)]
#[error("message catalogue {0}: {1}")]
pub struct CatalogError(&'static str, String);

fn bundle(
    language: Language,
    source: String,
) -> Result<(FluentBundle<FluentResource>, Vec<String>), CatalogError> {
    let resource = FluentResource::try_new(source)
        .map_err(|(_, errors)| CatalogError(language.tag(), format!("{errors:?}")))?;
    let ids = resource
        .entries()
        .filter_map(|entry| match entry {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
            _ => None,
        })
        .collect();
    let tag = language
        .tag()
        .parse()
        .map_err(|e| CatalogError(language.tag(), format!("{e}")))?;
    let mut bundle = FluentBundle::new_concurrent(vec![tag]);
    // No Unicode isolation marks around placeables: they would show in plain-text contexts.
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .map_err(|errors| CatalogError(language.tag(), format!("{errors:?}")))?;
    Ok((bundle, ids))
}

impl Catalog {
    /// Parses the catalogues shipped in the binary.
    pub fn load() -> Result<Self, CatalogError> {
        let mut bundles = HashMap::new();
        let (cyrillic, ids) = bundle(Language::SerbianCyrillic, CYRILLIC.to_owned())?;
        bundles.insert(Language::SerbianCyrillic, cyrillic);
        let (latin, _) = bundle(Language::SerbianLatin, transliterate(CYRILLIC))?;
        bundles.insert(Language::SerbianLatin, latin);
        let (english, english_ids) = bundle(Language::English, ENGLISH.to_owned())?;
        bundles.insert(Language::English, english);
        for id in &ids {
            if !english_ids.contains(id) {
                return Err(CatalogError("en", format!("message `{id}` is missing")));
            }
        }
        for id in &english_ids {
            if !ids.contains(id) {
                return Err(CatalogError(
                    "sr-Cyrl",
                    format!("message `{id}` is missing"),
                ));
            }
        }
        Ok(Self { bundles, ids })
    }

    /// Every message id.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// A message with arguments; a missing one shows its id (and is logged) rather than fail.
    pub fn message(&self, language: Language, id: &str, args: &[(&str, String)]) -> String {
        let Some(bundle) = self.bundles.get(&language) else {
            return id.to_owned();
        };
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            tracing::error!(id, language = language.tag(), "missing message");
            return id.to_owned();
        };
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, FluentValue::from(value.clone()));
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        if !errors.is_empty() {
            tracing::error!(
                id,
                language = language.tag(),
                ?errors,
                "message formatting failed"
            );
        }
        text.into_owned()
    }

    /// A message whose variant is chosen by the plural category of `count` (`$count`): Fluent
    /// selects by number only for a numeric argument.
    pub fn counted(&self, language: Language, id: &str, count: i64) -> String {
        let Some(bundle) = self.bundles.get(&language) else {
            return id.to_owned();
        };
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            tracing::error!(id, language = language.tag(), "missing message");
            return id.to_owned();
        };
        let mut args = FluentArgs::new();
        args.set("count", FluentValue::from(count));
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&args), &mut errors);
        if !errors.is_empty() {
            tracing::error!(
                id,
                language = language.tag(),
                ?errors,
                "message formatting failed"
            );
        }
        text.into_owned()
    }

    /// Whether a message exists in a language.
    pub fn has(&self, language: Language, id: &str) -> bool {
        self.bundles
            .get(&language)
            .is_some_and(|b| b.get_message(id).and_then(|m| m.value()).is_some())
    }
}

/// The registration e-mails in Serbian (Cyrillic) and English, one after the other; the
/// placeholders `{name}`, `{link}`, `{hours}`, `{login}` are left for the authority to fill.
pub fn registration_mails(catalog: &Catalog) -> authority::RegistrationMails {
    let both = |id: &str, args: &[(&str, String)], separator: &str| {
        format!(
            "{}{separator}{}",
            catalog.message(Language::SerbianCyrillic, id, args),
            catalog.message(Language::English, id, args)
        )
    };
    let placeholders: Vec<(&str, String)> = ["name", "link", "hours", "login"]
        .iter()
        .map(|p| (*p, format!("{{{p}}}")))
        .collect();
    authority::RegistrationMails {
        verify_subject: both("mail-register-verify-subject", &[], " / "),
        verify_body: format!(
            "{}\n",
            both("mail-register-verify-text", &placeholders, "\n\n")
        ),
        existing_subject: both("mail-register-existing-subject", &[], " / "),
        existing_body: format!(
            "{}\n",
            both("mail-register-existing-text", &placeholders, "\n\n")
        ),
    }
}

/// The cloud certificate's e-mails in Serbian (Cyrillic) and English, one after the other; the
/// placeholders (`{serial}`, ...; see [`authority::settings::CloudMails`]) are left for the
/// authority to fill.
pub fn cloud_mails(catalog: &Catalog) -> authority::settings::CloudMails {
    let placeholders: Vec<(&str, String)> = ["name", "serial", "until", "number", "old"]
        .iter()
        .map(|p| (*p, format!("{{{p}}}")))
        .collect();
    let both = |id: &str, separator: &str| {
        format!(
            "{}{separator}{}",
            catalog.message(Language::SerbianCyrillic, id, &placeholders),
            catalog.message(Language::English, id, &placeholders)
        )
    };
    authority::settings::CloudMails {
        issued_subject: both("mail-cloud-issued-subject", " / "),
        issued_body: format!(
            "{}\n\n{{agreement}}",
            both("mail-cloud-issued-text", "\n\n")
        ),
        renewed_subject: both("mail-cloud-renewed-subject", " / "),
        renewed_body: format!("{}\n", both("mail-cloud-renewed-text", "\n\n")),
        revoked_subject: both("mail-cloud-revoked-subject", " / "),
        revoked_body: format!("{}\n", both("mail-cloud-revoked-text", "\n\n")),
        revoked_all_subject: both("mail-cloud-revoked-all-subject", " / "),
        revoked_all_body: format!("{}\n", both("mail-cloud-revoked-all-text", "\n\n")),
    }
}

/// The agreement's text and words in Serbian Cyrillic (the agreement's language): the
/// placeholders left for the authority to fill, the validity and the renewal window each with the
/// plural form its number takes.
pub fn agreement_words(
    catalog: &Catalog,
    validity: authority::CloudValidity,
    renewal_window_days: i64,
) -> authority::ra::agreement::AgreementWords {
    let language = Language::SerbianCyrillic;
    let placeholders: Vec<(&str, String)> = [
        "date",
        "number",
        "provider",
        "address",
        "tax_id",
        "registration",
        "representative",
        "user_name",
        "jmbg",
        "validity",
        "renewal",
        "name",
    ]
    .iter()
    .map(|p| (*p, format!("{{{p}}}")))
    .collect();
    authority::ra::agreement::AgreementWords {
        template: format!(
            "{}\n",
            catalog.message(language, "agreement-text", &placeholders)
        ),
        representative: catalog.message(language, "agreement-representative", &placeholders),
        footer: catalog.message(language, "agreement-footer", &placeholders),
        validity: match validity {
            authority::CloudValidity::CalendarYears(years) => {
                catalog.counted(language, "agreement-validity-years", years)
            }
            authority::CloudValidity::Days(days) => {
                catalog.counted(language, "agreement-validity-days", days)
            }
        },
        renewal: catalog.counted(language, "agreement-renewal-window", renewal_window_days),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_exists_in_every_language() {
        let catalog = Catalog::load().unwrap();
        assert!(catalog.ids().len() > 40);
        let cyrillic = |text: &str| text.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c));
        for language in Language::ALL {
            for id in catalog.ids() {
                assert!(
                    catalog.has(language, id),
                    "{id} missing in {}",
                    language.tag()
                );
                let text = catalog.message(
                    language,
                    id,
                    &[
                        ("seconds", "5".into()),
                        ("id", "x".into()),
                        ("date", "d".into()),
                    ],
                );
                assert!(
                    !text.trim().is_empty(),
                    "{id} is empty in {}",
                    language.tag()
                );
                // Untranslated text shows in the wrong script: Cyrillic pages are Cyrillic,
                // Latin and English pages have none.
                let expect_cyrillic = language == Language::SerbianCyrillic;
                assert_eq!(
                    cyrillic(&text),
                    expect_cyrillic,
                    "{id} in {} is not in its script: {text}",
                    language.tag()
                );
            }
        }
    }

    #[test]
    fn the_agreement_words_take_the_serbian_plural_of_their_number() {
        use authority::CloudValidity::{CalendarYears, Days};
        let catalog = Catalog::load().unwrap();
        let renewal = |days| agreement_words(&catalog, CalendarYears(5), days).renewal;
        assert_eq!(renewal(30), "последњих 30 дана");
        assert_eq!(renewal(14), "последњих 14 дана");
        assert_eq!(renewal(1), "последњем 1 дану");
        assert_eq!(renewal(21), "последњем 21 дану");
        assert_eq!(renewal(3), "последња 3 дана");
        assert_eq!(renewal(12), "последњих 12 дана");
        assert_eq!(renewal(11), "последњих 11 дана");
        let validity = |v| agreement_words(&catalog, v, 30).validity;
        assert_eq!(validity(CalendarYears(5)), "5 година");
        assert_eq!(validity(CalendarYears(1)), "1 годину");
        assert_eq!(validity(CalendarYears(2)), "2 године");
        assert_eq!(validity(Days(1)), "1 дан");
        assert_eq!(validity(Days(21)), "21 дан");
        assert_eq!(validity(Days(4)), "4 дана");
        assert_eq!(validity(Days(365)), "365 дана");
        // The authority's own defaults are what the catalogue says for them.
        let defaults = authority::Settings::new("http://127.0.0.1");
        assert_eq!(
            agreement_words(
                &catalog,
                defaults.cloud_validity,
                defaults.renewal_window_days
            ),
            defaults.agreement_words
        );
    }

    #[test]
    fn cloud_mails_come_from_the_catalogues_in_both_languages() {
        use authority::ra::agreement::fill;
        let mails = cloud_mails(&Catalog::load().unwrap());
        let values = [
            ("name", "Ана Анић"),
            ("serial", "01AB"),
            ("until", "01.01.2031."),
            ("number", "2026-X"),
            ("agreement", "УГОВОР …"),
            ("old", "00FF"),
        ];
        let issued = fill(&mails.issued_body, &values);
        for needle in [
            "Поштовани/а Ана Анић, издат вам је",
            "(серијски број 01AB), важи до 01.01.2031.",
            "уговор број 2026-X",
            "Dear Ана Анић, your qualified",
            "\n\nУГОВОР …",
        ] {
            assert!(issued.contains(needle), "{needle}: {issued}");
        }
        let renewed = fill(&mails.renewed_body, &values);
        assert!(
            renewed.contains("нови серијски број 01AB") && renewed.contains("(00FF)"),
            "{renewed}"
        );
        assert!(fill(&mails.revoked_body, &values).contains("(серијски број 01AB)"));
        assert!(mails
            .revoked_all_body
            .contains("Сви ваши сертификати су опозвани"));
        for subject in [
            &mails.issued_subject,
            &mails.renewed_subject,
            &mails.revoked_subject,
            &mails.revoked_all_subject,
        ] {
            let (serbian, english) = subject.split_once(" / ").unwrap();
            assert!(
                serbian
                    .chars()
                    .any(|c| ('\u{0400}'..='\u{04FF}').contains(&c)),
                "{subject}"
            );
            assert!(english.is_ascii(), "{subject}");
        }
        // The authority's defaults, for settings made without the catalogues, are these texts.
        assert_eq!(mails, authority::settings::CloudMails::default());
        // No placeholder is left that the authority does not fill.
        for body in [&mails.issued_body, &mails.renewed_body, &mails.revoked_body] {
            assert!(!fill(body, &values).contains('{'), "{body}");
        }
    }

    #[test]
    fn registration_mails_come_from_the_catalogues_in_both_languages() {
        let mails = registration_mails(&Catalog::load().unwrap());
        assert!(
            mails.existing_body.contains("налог већ постоји")
                && mails.existing_body.contains("which already has one"),
            "{mails:?}"
        );
        assert_eq!(mails.existing_body.matches("{login}").count(), 2);
        assert!(
            mails.verify_body.contains("{name}")
                && mails.verify_body.contains(" {link} ")
                && mails.verify_body.contains("{hours}")
        );
        assert!(mails.verify_subject.contains(" / "));
    }

    #[test]
    fn latin_is_the_transliterated_cyrillic() {
        assert_eq!(
            transliterate("Пријавите се, Љубиша Џаковић"),
            "Prijavite se, Ljubiša Džaković"
        );
        let catalog = Catalog::load().unwrap();
        assert_eq!(
            catalog.message(Language::SerbianLatin, "nav-login", &[]),
            "Prijava"
        );
        assert_eq!(
            catalog.message(Language::SerbianCyrillic, "services", &[]),
            "услуге"
        );
        assert_eq!(
            catalog.message(
                Language::English,
                "wait-seconds",
                &[("seconds", "7".into())]
            ),
            "7 s"
        );
    }
}

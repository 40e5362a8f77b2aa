//! The service agreement of the seed's step 9, generated for each user: made under art. 30(1)
//! of the Law on Electronic Document, Electronic Identification and Trust Services (OG RS 94/17
//! and 52/21) and art. 3 of the Decree on conditions for qualified trust services (OG RS 37/18),
//! between the provider (configuration, DESIGN §7) and the user (name, JMBG). The words are the
//! server's (its message catalogues); the defaults here are the same Serbian text.

/// The provider as the agreement names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Legal name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Tax id (ПИБ).
    pub tax_id: String,
    /// Registration number (МБ).
    pub registration_number: String,
    /// Who signs for the provider, if the agreement names them.
    pub representative: Option<String>,
}

impl Default for Provider {
    /// The seed's Office.
    fn default() -> Self {
        Self {
            name: "Канцеларија за информационе технологије и електронску управу".into(),
            address: "Београд, Немањина 11".into(),
            tax_id: "110177886".into(),
            registration_number: "07020171".into(),
            representative: None,
        }
    }
}

/// The agreement's words, in its language (the server makes them from its message catalogues;
/// the lengths of time with the plural their number takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementWords {
    /// The text: the title line, then a paragraph a line. Filled in: `{date}`, `{number}`,
    /// `{provider}`, `{address}`, `{tax_id}`, `{registration}`, `{representative}`,
    /// `{user_name}`, `{jmbg}`, `{validity}`, `{renewal}`.
    pub template: String,
    /// What `{representative}` becomes when the provider names one (`{name}`).
    pub representative: String,
    /// The footer of every page of the PDF.
    pub footer: String,
    /// How long a certificate is valid (`5 година`).
    pub validity: String,
    /// The renewal window before expiry, as "in the …" of it continues (`последњих 30 дана`).
    pub renewal: String,
}

impl Default for AgreementWords {
    /// The Serbian text, for the defaults of the settings (5 years, 30 days).
    fn default() -> Self {
        Self {
            template: DEFAULT_TEMPLATE.into(),
            representative: ", коју заступа {name}".into(),
            footer: "Портал за електронску идентификацију".into(),
            validity: "5 година".into(),
            renewal: "последњих 30 дана".into(),
        }
    }
}

/// The seed's agreement (the server's catalogue has the same text as `agreement-text`).
const DEFAULT_TEMPLATE: &str = "УГОВОР О ПРУЖАЊУ УСЛУГЕ ИЗДАВАЊА КВАЛИФИКОВАНОГ ЕЛЕКТРОНСКОГ СЕРТИФИКАТА ЗА КВАЛИФИКОВАНИ ЕЛЕКТРОНСКИ ПОТПИС НА ДАЉИНУ\n\
\n\
На основу члана 30. став 1. Закона о електронском документу, електронској идентификацији и услугама од поверења у електронском пословању („Службени гласник РС”, бр. 94/17 и 52/21) и члана 3. Уредбе о условима за пружање квалификованих услуга од поверења („Службени гласник РС”, број 37/18), дана {date} године, под бројем {number}, закључује се уговор између:\n\
\n\
1. {provider}, {address}, ПИБ {tax_id}, матични број {registration}{representative} (у даљем тексту: Канцеларија), и\n\
2. Корисника: {user_name}, ЈМБГ {jmbg} (у даљем тексту: Корисник).\n\
\n\
Члан 1. Предмет уговора\n\
Канцеларија је уписана у Регистар пружалаца квалификованих услуга од поверења за услугу управљања квалификованим средством за израду електронског потписа на даљину. Предмет овог уговора је издавање квалификованог електронског сертификата Кориснику и управљање његовим кључем за потписивање у квалификованом средству Канцеларије, тако да Корисник може да прави квалификоване електронске потписе на даљину.\n\
\n\
Члан 2. Обавезе Канцеларије\n\
Канцеларија генерише пар кључева у квалификованом средству, чува приватни кључ тако да никада не напушта средство, употребљава га искључиво по одобрењу Корисника датом апликацијом ConsentID, објављује статус сертификата (листа опозваних сертификата и OCSP) и поступа у складу са Политиком сертификације и Практичним правилима.\n\
\n\
Члан 3. Обавезе Корисника и искључива контрола\n\
Корисник је дужан да чува ПИН апликације ConsentID у тајности, да не уступа уређај трећим лицима, да сваки захтев за потписивање пажљиво прегледа пре одобрења и да без одлагања опозове сертификат ако посумња у злоупотребу. Само Корисник одобрава сваку употребу свог кључа.\n\
\n\
Члан 4. Рок важења\n\
Сертификат важи {validity} од дана издавања.\n\
\n\
Члан 5. Обнова\n\
Корисник може да обнови сертификат у {renewal} његовог важења; при обнови се генерише нови пар кључева, а претходни сертификат се опозива.\n\
\n\
Члан 6. Опозив\n\
Корисник може у сваком тренутку да опозове сертификат на Порталу. Опозивом свих сертификата опозива се и сертификат апликације ConsentID, која тада престаје да буде активна. Канцеларија опозива сертификат у случајевима прописаним законом.\n\
\n\
Члан 7. Заштита података о личности\n\
Канцеларија обрађује податке о личности Корисника (име, презиме, ЈМБГ, адреса електронске поште) искључиво ради пружања услуге, у складу са Законом о заштити података о личности, и чува их у роковима прописаним за пружаоце квалификованих услуга од поверења.\n\
\n\
Члан 8. Приговори\n\
Приговоре на рад Канцеларије Корисник подноси електронском поштом или писаним путем на адресу Канцеларије; Канцеларија одговара у року од 15 дана.\n\
\n\
Члан 9. Завршне одредбе\n\
Уговор је закључен прихватањем на Порталу за електронску идентификацију и производи дејство даном издавања сертификата. Примерак уговора доставља се Кориснику електронском поштом.\n";

/// The heading and the articles of an agreement for `user_name` (JMBG `jmbg`), dated `date`
/// (`dd.mm.yyyy.`), with `number` (or a blank line until it is accepted).
pub fn agreement_text(
    provider: &Provider,
    user_name: &str,
    jmbg: &str,
    date: &str,
    number: Option<&str>,
    words: &AgreementWords,
) -> String {
    let number = number.unwrap_or("__________");
    let representative = provider
        .representative
        .as_deref()
        .map(|name| fill(&words.representative, &[("name", name)]))
        .unwrap_or_default();
    fill(
        &words.template,
        &[
            ("date", date),
            ("number", number),
            ("provider", &provider.name),
            ("address", &provider.address),
            ("tax_id", &provider.tax_id),
            ("registration", &provider.registration_number),
            ("representative", &representative),
            ("user_name", user_name),
            ("jmbg", jmbg),
            ("validity", &words.validity),
            ("renewal", &words.renewal),
        ],
    )
}

/// The agreement as a PDF (Cyrillic text that `pdftotext` extracts, DejaVu Sans embedded), for
/// the e-mail and the download: the first line is the title, every other line a paragraph.
pub fn agreement_pdf(text: &str, footer: &str) -> Result<Vec<u8>, crate::Error> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let title = lines.next().unwrap_or_default();
    let paragraphs: Vec<String> = lines.map(str::to_owned).collect();
    pdf::agreement_pdf(title, &paragraphs, footer)
        .map_err(|e| crate::Error::Inconsistent(format!("agreement PDF: {e}")))
}

/// `template` with each `{name}` of `values` replaced by its value, in one pass: a value that
/// itself holds braces (a user's name, say) is never read as a placeholder.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let (before, from) = rest.split_at(open);
        out.push_str(before);
        let value = from.find('}').and_then(|close| {
            let name = from.get(1..close)?;
            let value = values.iter().find(|(n, _)| *n == name)?.1;
            Some((value, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = from.get(close + 1..).unwrap_or_default();
            }
            None => {
                out.push('{');
                rest = from.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agreement_names_the_law_the_parties_and_the_user() {
        let text = agreement_text(
            &Provider::default(),
            "Петар Петровић",
            "0101990710008",
            "25.11.2026.",
            None,
            &AgreementWords::default(),
        );
        for needle in [
            "94/17 и 52/21",
            "37/18",
            "Немањина 11",
            "110177886",
            "07020171",
            "Петар Петровић",
            "0101990710008",
            "__________",
            "Члан 9.",
            "важи 5 година од дана издавања",
            "у последњих 30 дана његовог важења",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
        assert!(!text.contains("заступа"), "no representative is configured");
    }

    #[test]
    fn the_agreement_names_the_configured_provider_and_lengths() {
        let provider = Provider {
            name: "Пример д.о.о.".into(),
            address: "Нови Сад, Булевар 1".into(),
            tax_id: "123456789".into(),
            registration_number: "87654321".into(),
            representative: Some("Марко Марковић".into()),
        };
        let words = AgreementWords {
            validity: "2 године".into(),
            renewal: "последњих 14 дана".into(),
            ..AgreementWords::default()
        };
        let text = agreement_text(
            &provider,
            "Ана Анић",
            "0101990710008",
            "1.1.2027.",
            Some("2027-AB"),
            &words,
        );
        assert!(text.contains(
            "1. Пример д.о.о., Нови Сад, Булевар 1, ПИБ 123456789, матични број 87654321, коју заступа Марко Марковић (у даљем тексту: Канцеларија)"
        ));
        assert!(text.contains("Сертификат важи 2 године од дана издавања."));
        assert!(text.contains("у последњих 14 дана његовог важења"));
        for seed in ["Немањина", "110177886", "07020171", "30 дана", "5 година"] {
            assert!(!text.contains(seed), "{seed} left from the defaults");
        }
    }
}

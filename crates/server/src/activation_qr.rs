//! Activation codes as QR codes (issue 10): the officer's commands print the code also as a QR
//! code that the ConsentID web app scans. It encodes the app's activation address with the
//! code, `<app URL>/#/activate?code=<code>`, so a phone's own camera opens the app with the
//! code filled in; the app's scanner reads the same text.

use qrcode::{EcLevel, QrCode};

/// The text of the QR code: the app's activation address carrying `code`.
pub fn activation_link(app_public_url: &str, code: &str) -> String {
    format!(
        "{}/#/activate?code={code}",
        app_public_url.trim_end_matches('/')
    )
}

fn qr(text: &str) -> Result<QrCode, String> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| format!("cannot make a QR code: {e}"))
}

/// The QR code in Unicode half blocks, for a terminal with a dark background (light modules
/// on dark, as scanners expect dark on light after the terminal's inversion).
pub fn terminal(text: &str) -> Result<String, String> {
    use qrcode::render::unicode::Dense1x2;
    Ok(qr(text)?
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Writes the QR code as a PNG (black on white, at least 256 pixels wide) to `path`.
pub fn write_png(text: &str, path: &std::path::Path) -> Result<(), String> {
    let image = qr(text)?
        .render::<image::Luma<u8>>()
        .min_dimensions(256, 256)
        .build();
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| format!("--qr: cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_carries_the_code_under_the_app_url() {
        assert_eq!(
            activation_link("https://app.example.rs/", "ABCD-EFGH"),
            "https://app.example.rs/#/activate?code=ABCD-EFGH"
        );
    }

    #[test]
    fn the_terminal_rendering_is_square_blocks() {
        let text = terminal("https://app.example.rs/#/activate?code=ABCD").unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 10);
        assert!(lines
            .iter()
            .all(|l| l.chars().count() == lines[0].chars().count()));
    }
}

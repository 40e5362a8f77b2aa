//! Reading from the user: lines from standard input, PINs from the terminal without echo.
//! Prompts go to standard error so that standard output stays the command's result.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use zeroize::Zeroizing;

use super::{text, Failure};

/// Writes a prompt (no newline) to standard error.
pub fn prompt(text: &str) {
    let mut err = std::io::stderr();
    let _ = write!(err, "{text}");
    let _ = err.flush();
}

/// One line of standard input without its line ending; `None` at end of input.
pub fn read_line() -> Result<Option<Zeroizing<String>>, Failure> {
    let mut line = Zeroizing::new(String::new());
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Ok(None),
        Ok(_) => {
            let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
            Ok(Some(trimmed))
        }
        Err(e) => Err(Failure::message(format!("{} ({e})", text::NO_INPUT))),
    }
}

/// A line of standard input that must be there.
pub fn require_line() -> Result<Zeroizing<String>, Failure> {
    read_line()?.ok_or_else(|| Failure::message(text::NO_INPUT.to_owned()))
}

/// Whether standard input is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks for a secret on the terminal without echo.
pub fn secret(prompt: &str) -> Result<Zeroizing<String>, Failure> {
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|e| Failure::message(format!("{} ({e})", text::NO_TERMINAL)))
}

/// Asks a yes-or-no question on standard input: `да`, `da`, `yes` or `y` (any case) is yes,
/// anything else (or the end of input) is no.
pub fn confirm(question: &str) -> Result<bool, Failure> {
    prompt(question);
    Ok(read_line()?.is_some_and(|line| is_yes(&line)))
}

/// Whether an answer is a yes ([`confirm`]).
pub fn is_yes(answer: &str) -> bool {
    matches!(
        answer.trim().to_lowercase().as_str(),
        "да" | "da" | "yes" | "y" | "д" | "d"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_yes_confirms() {
        for yes in ["да", "ДА", "da", "Yes", " y "] {
            assert!(super::is_yes(yes), "{yes}");
        }
        for no in ["", "не", "no", "n", "yes please", "1"] {
            assert!(!super::is_yes(no), "{no}");
        }
    }
}

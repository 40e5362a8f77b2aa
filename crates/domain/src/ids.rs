//! Typed ids: an account's id cannot be passed where a request's is expected. Each is the
//! random text the store keeps; `Deref<Target = str>` lets it be read as that text. A SAD,
//! a secret, has a type of its own that hides it.

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id!(
    /// An account.
    UserId
);
text_id!(
    /// A login or signing request (a ConsentID transaction).
    TxnId
);
text_id!(
    /// A ConsentID device.
    DeviceId
);

/// A signature activation data (SAD): the one-time bearer secret that a CSC client spends on
/// signHash. The store keeps only its hash ([`Sad::hash_hex`]), and `Debug` never shows it.
/// Unlike the ids above it is not `Serialize`: it reaches an answer only through
/// [`Sad::as_str`], on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Sad(String);

impl Sad {
    /// A new SAD: 32 random bytes as base64url text.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        use base64::Engine as _;
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The text handed to the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the store keeps and looks up: SHA-256 of the text, lower-case hex.
    pub fn hash_hex(&self) -> String {
        use sha2::Digest as _;
        sha2::Sha256::digest(self.0.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// What a client sent as its SAD.
impl From<String> for Sad {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl std::fmt::Debug for Sad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sad(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sad_is_stored_as_its_hash_and_never_printed() {
        let sad = Sad::from_random([7u8; 32]);
        assert_eq!(sad.as_str().len(), 43);
        assert_eq!(format!("{sad:?}"), "Sad(..)");
        // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        assert_eq!(
            Sad::from("abc".to_owned()).hash_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(sad, Sad::from_random([8u8; 32]));
    }

    #[test]
    fn an_id_reads_as_its_text_and_compares_only_with_its_own_kind() {
        let user = UserId::from("u-1");
        assert_eq!(user.as_str(), "u-1");
        assert_eq!(&*user, "u-1");
        assert_eq!(user.to_string(), "u-1");
        assert!(user == *"u-1");
        assert!(user == "u-1");
        assert_ne!(user, UserId::from("u-2"));
    }
}

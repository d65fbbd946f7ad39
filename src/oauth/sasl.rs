//! The two SASL mechanisms that present an OAuth2 bearer token: XOAUTH2 (Google's, also
//! Microsoft's) and OAUTHBEARER (RFC 7628). The payloads hold the token: they stay secret.

use secrecy::{ExposeSecret, SecretString};

/// Which token mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Xoauth2,
    Oauthbearer,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::Oauthbearer => "OAUTHBEARER",
        }
    }

    /// What the client answers to a server's error challenge to end the exchange: nothing for
    /// XOAUTH2, a single %x01 for OAUTHBEARER (RFC 7628 §3.2.3).
    pub fn abort(self) -> &'static [u8] {
        match self {
            Mechanism::Xoauth2 => b"",
            Mechanism::Oauthbearer => b"\x01",
        }
    }

    /// The initial client response (not yet base64) for `user` and `token`; OAUTHBEARER also
    /// names the server it talks to.
    pub fn payload(self, user: &str, token: &SecretString, host: &str, port: u16) -> SecretString {
        let t = token.expose_secret();
        SecretString::from(match self {
            Mechanism::Xoauth2 => format!("user={user}\x01auth=Bearer {t}\x01\x01"),
            Mechanism::Oauthbearer => format!(
                "n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {t}\x01\x01",
                saslname(user)
            ),
        })
    }
}

/// RFC 5801's escaping of the authorization identity in the GS2 header.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The OAuth2 mechanism to use among those a server offers (upper case): XOAUTH2 first (what
/// Gmail and Microsoft document), else OAUTHBEARER.
pub fn choose(offered: &[String]) -> Option<Mechanism> {
    let has = |m: &str| offered.iter().any(|o| o.eq_ignore_ascii_case(m));
    if has("XOAUTH2") {
        Some(Mechanism::Xoauth2)
    } else if has("OAUTHBEARER") {
        Some(Mechanism::Oauthbearer)
    } else {
        None
    }
}

/// The `status` of a server's JSON error challenge (`{"status":"invalid_token",…}`), cleaned.
pub fn challenge_status(challenge: &[u8]) -> Option<String> {
    let j: serde_json::Value = serde_json::from_slice(challenge).ok()?;
    j["status"].as_str().map(crate::mail::sanitize::clean_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_follow_the_specs() {
        let t = SecretString::from("mra_tok".to_string());
        let x = Mechanism::Xoauth2.payload("a@b.test", &t, "h", 1);
        assert_eq!(
            x.expose_secret(),
            "user=a@b.test\x01auth=Bearer mra_tok\x01\x01"
        );
        let o = Mechanism::Oauthbearer.payload("a,=b@c", &t, "127.0.0.1", 6994);
        assert_eq!(
            o.expose_secret(),
            "n,a=a=2C=3Db@c,\x01host=127.0.0.1\x01port=6994\x01auth=Bearer mra_tok\x01\x01"
        );
        let both = vec!["OAUTHBEARER".to_string(), "XOAUTH2".to_string()];
        assert_eq!(choose(&both), Some(Mechanism::Xoauth2));
        assert_eq!(choose(&both[..1]), Some(Mechanism::Oauthbearer));
        assert_eq!(choose(&["PLAIN".to_string()]), None);
        assert_eq!(
            challenge_status(br#"{"status":"invalid_token","schemes":"bearer"}"#).as_deref(),
            Some("invalid_token")
        );
    }
}

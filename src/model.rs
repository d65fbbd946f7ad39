//! Shared model types: plain data that the store, the protocol code and the faces all speak.
//! Nothing here does I/O, so every layer may import it (docs/architecture.md).

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Inbox,
        Role::Sent,
        Role::Drafts,
        Role::Trash,
        Role::Junk,
        Role::Archive,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inbox => "inbox",
            Role::Sent => "sent",
            Role::Drafts => "drafts",
            Role::Trash => "trash",
            Role::Junk => "junk",
            Role::Archive => "archive",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct FolderInfo {
    /// Decoded UTF-8 name.
    pub name: String,
    /// Name as the server spells it (modified UTF-7), used on the wire.
    pub wire_name: String,
    pub delimiter: Option<String>,
    pub attributes: Vec<String>,
    pub selectable: bool,
    pub role: Option<Role>,
    /// "special_use" or "name".
    pub role_source: Option<&'static str>,
}

/// A new immutable id (accounts, leases, tokens): 16 hex digits from the OS's randomness.
pub fn new_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (t as u64).to_be_bytes();
    }
    hex::encode(b)
}

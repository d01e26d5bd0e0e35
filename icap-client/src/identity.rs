//! Who uploaded a file, and the ICAP request headers that carry it to the server.

use std::net::IpAddr;

use icap_proto::{HeaderName, HeaderValue, Headers};
use serde::{Deserialize, Serialize};

use crate::error::{Error, escaped};

/// The kind of account that uploads (the `X-FILECLOUD-USER-TYPE` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserType {
    /// A full user.
    Full,
    /// A guest.
    Guest,
    /// An external user.
    External,
}

impl UserType {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Full => "full",
            UserType::Guest => "guest",
            UserType::External => "external",
        }
    }
}

/// The uploader of a file: sent to the server in identity headers (per
/// [`IdentityHeaders`]) and written to the audit log.
///
/// ```
/// use icap_client::{Uploader, UserType};
/// let u = Uploader::new("alice")
///     .with_email("alice@example.com")
///     .with_user_type(UserType::Guest)
///     .with_groups(["sales", "emea"])
///     .with_ip("192.0.2.7".parse().unwrap());
/// assert_eq!(u.groups.join(","), "sales,emea");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploader {
    /// The account name, sent in the user-name identity header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Full, guest or external account, sent in the user-type header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<UserType>,
    /// The groups the account belongs to, sent comma-separated in the group header.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub groups: Vec<String>,
    /// The uploader's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

impl Uploader {
    /// An uploader with a name.
    pub fn new(name: impl Into<String>) -> Self {
        Uploader {
            name: Some(name.into()),
            ..Uploader::default()
        }
    }
    /// Sets the e-mail address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
    /// Sets the account type.
    pub fn with_user_type(mut self, t: UserType) -> Self {
        self.user_type = Some(t);
        self
    }
    /// Sets the groups.
    pub fn with_groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, groups: I) -> Self {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }
    /// Sets the IP address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }
}

/// Which header carries which part of the [`Uploader`], and the switch that turns all
/// identity and extra headers off.
///
/// The default sends the `FileCloud` set (`X-FILECLOUD-USER-NAME`, `-USER-EMAIL`,
/// `-USER-TYPE`, `-GROUP-NAMES`) plus `X-Client-IP`. [`IdentityHeaders::common`] sends
/// `X-Client-IP`, `X-Client-Username` and `X-Authenticated-User` (base64 of
/// `Local://name`, as Squid does). Any name can be changed or removed.
///
/// ```
/// use icap_client::IdentityHeaders;
/// let h = IdentityHeaders::filecloud().with_user_email(None).with_user_name(Some("X-User"));
/// assert_eq!(h.user_name.as_deref(), Some("X-User"));
/// assert!(IdentityHeaders::disabled().enabled == false);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityHeaders {
    /// When false, no identity header and no extra header is sent.
    pub enabled: bool,
    /// Header for [`Uploader::name`].
    pub user_name: Option<String>,
    /// Header for [`Uploader::email`].
    pub user_email: Option<String>,
    /// Header for [`Uploader::user_type`].
    pub user_type: Option<String>,
    /// Header for [`Uploader::groups`] (comma-separated).
    pub group_names: Option<String>,
    /// Header for [`Uploader::ip`].
    pub client_ip: Option<String>,
    /// Header carrying base64(`Local://name`) (Squid's `X-Authenticated-User`).
    pub authenticated_user: Option<String>,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        IdentityHeaders::filecloud()
    }
}

impl IdentityHeaders {
    /// The `FileCloud` header names and `X-Client-IP`.
    pub fn filecloud() -> Self {
        IdentityHeaders {
            enabled: true,
            user_name: Some("X-FILECLOUD-USER-NAME".into()),
            user_email: Some("X-FILECLOUD-USER-EMAIL".into()),
            user_type: Some("X-FILECLOUD-USER-TYPE".into()),
            group_names: Some("X-FILECLOUD-GROUP-NAMES".into()),
            client_ip: Some("X-Client-IP".into()),
            authenticated_user: None,
        }
    }

    /// The names proxies use: `X-Client-IP`, `X-Client-Username`, `X-Authenticated-User`.
    pub fn common() -> Self {
        IdentityHeaders {
            enabled: true,
            user_name: Some("X-Client-Username".into()),
            user_email: None,
            user_type: None,
            group_names: None,
            client_ip: Some("X-Client-IP".into()),
            authenticated_user: Some("X-Authenticated-User".into()),
        }
    }

    /// Sends nothing.
    pub fn disabled() -> Self {
        IdentityHeaders {
            enabled: false,
            ..IdentityHeaders::filecloud()
        }
    }

    /// Sets the header for the user name (`None`: not sent).
    pub fn with_user_name(mut self, name: Option<&str>) -> Self {
        self.user_name = name.map(Into::into);
        self
    }
    /// Sets the header for the e-mail address.
    pub fn with_user_email(mut self, name: Option<&str>) -> Self {
        self.user_email = name.map(Into::into);
        self
    }
    /// Sets the header for the user type.
    pub fn with_user_type(mut self, name: Option<&str>) -> Self {
        self.user_type = name.map(Into::into);
        self
    }
    /// Sets the header for the group names.
    pub fn with_group_names(mut self, name: Option<&str>) -> Self {
        self.group_names = name.map(Into::into);
        self
    }
    /// Sets the header for the client IP.
    pub fn with_client_ip(mut self, name: Option<&str>) -> Self {
        self.client_ip = name.map(Into::into);
        self
    }
    /// Sets the header for the authenticated user.
    pub fn with_authenticated_user(mut self, name: Option<&str>) -> Self {
        self.authenticated_user = name.map(Into::into);
        self
    }

    /// Checks that every configured name is a valid header name.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        for n in [
            &self.user_name,
            &self.user_email,
            &self.user_type,
            &self.group_names,
            &self.client_ip,
            &self.authenticated_user,
        ]
        .into_iter()
        .flatten()
        {
            HeaderName::new(n.clone().into_bytes())
                .map_err(|e| Error::config(format!("invalid header name {}: {e}", escaped(n))))?;
        }
        Ok(())
    }

    /// Appends the headers for `uploader` to `out`. A value with CR, LF or NUL is refused
    /// with a configuration error: it is never sent.
    pub(crate) fn apply(&self, uploader: &Uploader, out: &mut Headers) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        let mut put = |name: &Option<String>, value: Option<String>| -> Result<(), Error> {
            if let (Some(n), Some(v)) = (name, value) {
                let value = HeaderValue::new(v.clone().into_bytes()).map_err(|_| {
                    Error::config(format!(
                        "refused identity header {}: value {} contains CR, LF or NUL",
                        escaped(n),
                        escaped(&v)
                    ))
                })?;
                let name = HeaderName::new(n.clone().into_bytes()).map_err(|e| {
                    Error::config(format!("invalid header name {}: {e}", escaped(n)))
                })?;
                out.push(name, value);
            }
            Ok(())
        };
        put(&self.user_name, uploader.name.clone())?;
        put(&self.user_email, uploader.email.clone())?;
        put(
            &self.user_type,
            uploader.user_type.map(|t| t.as_str().to_owned()),
        )?;
        put(
            &self.group_names,
            (!uploader.groups.is_empty()).then(|| uploader.groups.join(",")),
        )?;
        put(&self.client_ip, uploader.ip.map(|ip| ip.to_string()))?;
        put(
            &self.authenticated_user,
            uploader
                .name
                .as_ref()
                .map(|n| base64(format!("Local://{n}").as_bytes())),
        )?;
        Ok(())
    }
}

/// Standard base64 with padding (RFC 4648 section 4).
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= group.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_answers() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("Local://alice", "TG9jYWw6Ly9hbGljZQ=="),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn filecloud_set_and_refusal() {
        let u = Uploader::new("alice")
            .with_email("a@example.com")
            .with_user_type(UserType::External)
            .with_groups(["g1", "g2"]);
        let mut h = Headers::new();
        IdentityHeaders::filecloud().apply(&u, &mut h).unwrap();
        assert_eq!(h.get("X-FILECLOUD-USER-NAME").unwrap().as_bytes(), b"alice");
        assert_eq!(
            h.get("X-FILECLOUD-USER-TYPE").unwrap().as_bytes(),
            b"external"
        );
        assert_eq!(
            h.get("X-FILECLOUD-GROUP-NAMES").unwrap().as_bytes(),
            b"g1,g2"
        );
        assert!(h.get("X-Client-IP").is_none());

        let mut h = Headers::new();
        IdentityHeaders::disabled().apply(&u, &mut h).unwrap();
        assert!(h.is_empty());

        let evil = Uploader::new("alice\r\nX-Evil: 1");
        let err = IdentityHeaders::filecloud()
            .apply(&evil, &mut Headers::new())
            .unwrap_err();
        assert!(err.is_config());
        let msg = err.to_string();
        assert!(!msg.contains(['\r', '\n']), "{msg}");
        assert!(msg.contains(r"alice\r\nX-Evil: 1"), "{msg}");
    }
}

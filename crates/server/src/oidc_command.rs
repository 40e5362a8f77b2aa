//! `eidportal oidc client add|list|show|remove`: the operator registers the services that log
//! citizens in with eID (issue 23). Part of the `eidportal` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use authority::oidc::ClientRegistration;
use authority::Authority;
use domain::oidc::{ClientRecord, Profile, SubjectType};

/// `eidportal oidc …`.
#[derive(Debug, Subcommand)]
pub enum OidcCommand {
    /// The services that log citizens in with eID (OpenID Connect clients).
    #[command(subcommand)]
    Client(ClientCommand),
    /// The ID-token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `eidportal oidc keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key: published in the JWKS now, signing after the overlap; the key
    /// it replaces stays published until the tokens it signed have expired. Every server
    /// learns of it within a minute.
    Rotate {
        /// Seconds between publishing the new key and signing with it (clients refresh their
        /// copy of the JWKS meanwhile).
        #[arg(long, default_value_t = 3600)]
        overlap: i64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProfileArg {
    /// FAPI 2.0: PAR, PKCE, private_key_jwt, DPoP (the default).
    Fapi2,
    /// Code flow with PKCE; a client secret, private_key_jwt, or a public client.
    Basic,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SubjectArg {
    /// A `sub` of its own for each service (the default).
    Pairwise,
    /// The account's id, the same for every service so registered.
    Public,
}

/// `eidportal oidc client …`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a service: prints its client_id (and, for a basic confidential client without
    /// keys, its client_secret, shown this once).
    Add {
        /// The service's name, shown on the consent page and on the phone.
        #[arg(long)]
        name: String,
        /// A redirect URI (exact match; repeat for more).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// fapi2 (default) or basic.
        #[arg(long, value_enum, default_value = "fapi2")]
        profile: ProfileArg,
        /// Its public keys (a JWKS file) for private_key_jwt.
        #[arg(long, value_name = "FILE")]
        jwks: Option<PathBuf>,
        /// A public client (basic profile only): PKCE, no secret.
        #[arg(long)]
        public: bool,
        /// A scope it may ask for beyond openid (profile, email, offline_access; repeat).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// It may receive the JMBG (scope jmbg).
        #[arg(long)]
        allow_jmbg: bool,
        /// pairwise (default) or public `sub`.
        #[arg(long, value_enum, default_value = "pairwise")]
        subject: SubjectArg,
        /// It may ask for logins from its own server (CIBA, poll mode): counters, call centres.
        #[arg(long)]
        ciba: bool,
        /// CIBA in ping mode: where it is told that a request's answer is ready (https, or
        /// http on a loopback address).
        #[arg(long, value_name = "URL", requires = "ciba")]
        ciba_notification_endpoint: Option<String>,
        /// Where its back-channel logout tokens go.
        #[arg(long, value_name = "URL")]
        backchannel_logout_uri: Option<String>,
        /// Where RP-initiated logout may send the browser (repeat for more).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the registered services.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one service.
    Show {
        /// Its client_id (one may begin with `-`: it is taken as the id all the same).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a service: its tokens stop working at once.
    Remove {
        /// Its client_id (one may begin with `-`: it is taken as the id all the same).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

fn client_json(client: &ClientRecord) -> Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "profile": client.profile.as_str(),
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": client.auth_method().names().first(),
        "scopes": client.allowed_scopes(),
        "allow_jmbg": client.allow_jmbg,
        "subject_type": match client.subject {
            SubjectType::Pairwise => "pairwise",
            SubjectType::Public => "public",
        },
        "ciba": client.ciba,
        "backchannel_token_delivery_mode": client.ciba_delivery_mode(),
        "backchannel_client_notification_endpoint": client.ciba_ping_endpoint(),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "created_at": client.created_at.rfc3339(),
    })
}

fn print_client(client: &ClientRecord) {
    println!("client_id: {}", client.client_id);
    println!("name: {}", client.name);
    println!("profile: {}", client.profile.as_str());
    println!(
        "authentication: {}",
        client.auth_method().names().join(", ")
    );
    println!("redirect URIs: {}", client.redirect_uris.join(" "));
    println!("scopes: {}", client.allowed_scopes().join(" "));
    match (client.ciba_delivery_mode(), client.ciba_ping_endpoint()) {
        (Some(mode), Some(endpoint)) => println!("CIBA: {mode}, notified at {endpoint}"),
        (Some(mode), None) => println!("CIBA: {mode}"),
        (None, _) => {}
    }
}

/// Runs an `oidc` command.
pub async fn run(command: OidcCommand, authority: &Authority) -> Result<ExitCode, String> {
    let command = match command {
        OidcCommand::Client(command) => command,
        OidcCommand::Keys(KeysCommand::Rotate { overlap }) => {
            let generation = authority
                .oidc
                .rotate_keys(overlap)
                .await
                .map_err(|e| server::error::chain(&e))?;
            println!(
                "signing key {} published; it signs from {}",
                generation.generation,
                generation.signs_from.rfc3339()
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    match command {
        ClientCommand::Add {
            name,
            redirect_uris,
            profile,
            jwks,
            public,
            scopes,
            allow_jmbg,
            subject,
            ciba,
            ciba_notification_endpoint,
            backchannel_logout_uri,
            post_logout_redirect_uris,
            json,
        } => {
            let jwks = match jwks {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("--jwks {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let registration = ClientRegistration {
                name,
                redirect_uris,
                profile: match profile {
                    ProfileArg::Fapi2 => Profile::Fapi2,
                    ProfileArg::Basic => Profile::Basic,
                },
                jwks,
                public,
                scopes,
                allow_jmbg,
                subject: match subject {
                    SubjectArg::Pairwise => SubjectType::Pairwise,
                    SubjectArg::Public => SubjectType::Public,
                },
                ciba,
                ciba_notification_endpoint,
                backchannel_logout_uri,
                post_logout_redirect_uris,
            };
            let (client, secret) = authority
                .oidc
                .register_client(registration)
                .await
                .map_err(|e| server::error::chain(&e))?;
            if json {
                let mut out = client_json(&client);
                if let (Some(secret), Some(map)) = (&secret, out.as_object_mut()) {
                    map.insert("client_secret".into(), json!(secret));
                }
                println!("{out}");
            } else {
                print_client(&client);
                if let Some(secret) = &secret {
                    println!("client_secret: {secret}");
                    println!("(the secret is shown only now; only its hash is kept)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::List { json } => {
            let clients = authority
                .oidc
                .clients()
                .await
                .map_err(|e| server::error::chain(&e))?;
            if json {
                let items: Vec<Value> = clients.iter().map(client_json).collect();
                println!("{}", Value::Array(items));
            } else {
                println!("{:<22}  {:<6}  name", "client_id", "profile");
                for client in &clients {
                    println!(
                        "{:<22}  {:<6}  {}",
                        client.client_id,
                        client.profile.as_str(),
                        client.name
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Show { client_id, json } => {
            let client = authority
                .oidc
                .client(&client_id)
                .await
                .map_err(|e| server::error::chain(&e))?
                .ok_or_else(|| format!("no client {client_id}"))?;
            if json {
                println!("{}", client_json(&client));
            } else {
                print_client(&client);
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Remove { client_id } => {
            if authority
                .oidc
                .remove_client(&client_id)
                .await
                .map_err(|e| server::error::chain(&e))?
            {
                println!("removed {client_id}");
                Ok(ExitCode::SUCCESS)
            } else {
                Err(format!("no client {client_id}"))
            }
        }
    }
}

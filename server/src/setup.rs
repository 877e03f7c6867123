//! Setting an installation up: the `--dev` demo account (keys, origins, demo admin,
//! site URL), the warnings about keys from before origins existed, and the command-line
//! tools `keys create` and `users create` (the first admin of a fresh install).

use std::io::Read;

use crate::auth::{self, OriginPattern, Role};
use crate::directory::{CreateUserError, Directory, TokenKind, UserRecord};
use crate::keys;

/// The demo admin `--dev` creates (said loudly, like the demo keys).
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.test";
pub const DEMO_ADMIN_PASSWORD: &str = "open-the-demo-console";

fn now() -> String {
    crate::clock::now().to_iso8601()
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The origin of a URL (`http://127.0.0.1:8080`), as an allowed-origin entry.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    OriginPattern::parse(&u.origin().ascii_serialization())
        .ok()
        .map(|p| p.canonical())
}

/// `--dev`: the demo account with `pk_demo`/`sk_demo` (allowed origins: this server's
/// own, and any loopback page), the demo admin, and this server as the site personal
/// links send visitors to.
pub async fn dev_account(d: &dyn Directory, public_url: &str) -> Result<(), String> {
    // Nodes of a cluster starting together would each find no demo key and create an
    // account: one at a time, the first creates it and the others find it.
    let _one_at_a_time = d.setup_guard().await.map_err(err)?;
    let origins: Vec<String> = origin_of(public_url).into_iter().collect();
    let account = match d.key(keys::DEMO_PUBLIC_KEY).await.map_err(err)? {
        Some(k) => {
            if k.origins.is_none() {
                d.set_key_origins(k.account_id, keys::DEMO_PUBLIC_KEY, &origins)
                    .await
                    .map_err(err)?;
            }
            k.account_id
        }
        None => {
            let id = d.create_account("demo").await.map_err(err)?;
            d.create_key(
                id,
                Some("demo"),
                keys::DEMO_PUBLIC_KEY,
                &auth::hash_secret(keys::DEMO_SECRET_KEY),
                Some(&origins),
                true,
                &now(),
            )
            .await
            .map_err(err)?;
            id
        }
    };
    d.set_key_allow_loopback(keys::DEMO_PUBLIC_KEY, true)
        .await
        .map_err(err)?;
    if d.site_url(account).await.map_err(err)?.is_none() {
        d.set_site_url(account, Some(&format!("{public_url}/")))
            .await
            .map_err(err)?;
    }
    let admin_note = match d.user_by_email(DEMO_ADMIN_EMAIL).await.map_err(err)? {
        Some(_) => "exists already (its password is whatever it was set to)",
        None => {
            let hash = auth::hash_password(DEMO_ADMIN_PASSWORD)?;
            let user = UserRecord {
                id: format!("u_{}", auth::random_secret(8)),
                account_id: account,
                email: DEMO_ADMIN_EMAIL.into(),
                username: "demo-admin".into(),
                name: "Demo Admin".into(),
                nickname: "Demo".into(),
                role: Role::Admin,
                password_hash: Some(hash),
                disabled: false,
                created_at: now(),
            };
            match d.create_user(&user).await {
                Ok(()) | Err(CreateUserError::EmailTaken) => {}
                Err(CreateUserError::UsernameTaken) => {
                    let user = UserRecord {
                        username: format!("demo-admin-{}", auth::random_secret(2)),
                        ..user
                    };
                    d.create_user(&user).await.map_err(|e| format!("{e:?}"))?;
                }
                Err(CreateUserError::Store(e)) => return Err(e.to_string()),
            }
            "created"
        }
    };
    tracing::warn!(
        "DEV MODE: demo keys pk_demo (SDK, this server's own and any loopback page) and \
         sk_demo (REST, integrations) are active, and the demo admin {DEMO_ADMIN_EMAIL} with \
         password `{DEMO_ADMIN_PASSWORD}` signs in to the console ({admin_note}). Anyone who \
         knows them can co-browse and administer. Never use --dev in production."
    );
    Ok(())
}

/// Keys from before allowed origins existed accept any page: say so at every start.
pub async fn warn_unbound_keys(d: &dyn Directory) -> Result<(), String> {
    for (account, _) in d.accounts().await.map_err(err)? {
        for k in d.keys(account).await.map_err(err)? {
            if k.origins.is_none() && k.revoked_at.is_none() {
                tracing::warn!(
                    key = %k.public_key,
                    "this public key has no allowed origins (it was created before keys had \
                     them): any page may use it. Set its origins in the console (Keys) or \
                     with PATCH /api/v1/keys/{{public_key}}."
                );
            }
        }
    }
    Ok(())
}

/// The account a command acts on: `--account NAME`, or the only account there is; a
/// fresh install gets one named `name_for_new`.
async fn pick_account(
    d: &dyn Directory,
    account: Option<&str>,
    name_for_new: &str,
) -> Result<i64, String> {
    let accounts = d.accounts().await.map_err(err)?;
    match account {
        Some(name) => match d.account_by_name(name).await.map_err(err)? {
            Some(id) => Ok(id),
            None => d.create_account(name).await.map_err(err),
        },
        None => match accounts.as_slice() {
            [] => d.create_account(name_for_new).await.map_err(err),
            [(id, _)] => Ok(*id),
            many => Err(format!(
                "this database holds {} accounts ({}): say which with --account NAME",
                many.len(),
                many.iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
    }
}

/// `keys create --name NAME --origin O…`: a new account (named NAME) with a key pair
/// bound to the origins; prints both keys (the secret only this once).
pub async fn create_keys(d: &dyn Directory, name: &str, origins: &[String]) -> Result<(), String> {
    if origins.is_empty() {
        return Err(
            "give the pages that may use the key: --origin https://shop.example \
                    (repeatable; https://*.shop.example for its subdomains)"
                .into(),
        );
    }
    let mut canonical = Vec::new();
    for o in origins {
        let p = OriginPattern::parse(o)?;
        if !canonical.contains(&p.canonical()) {
            canonical.push(p.canonical());
        }
    }
    let pair = keys::KeyPair::generate();
    let account = d.create_account(name).await.map_err(err)?;
    d.create_key(
        account,
        Some(name),
        &pair.public_key,
        &auth::hash_secret(&pair.secret_key),
        Some(&canonical),
        false,
        &now(),
    )
    .await
    .map_err(err)?;
    println!("public key: {}", pair.public_key);
    println!("secret key: {}", pair.secret_key);
    println!("allowed origins: {}", canonical.join(" "));
    println!("The secret key is stored hashed and cannot be shown again; keep it safe.");
    Ok(())
}

/// `users create --email E --role R`: a user of the account (the first admin of a fresh
/// install). Prints a one-time link (valid 7 days) that sets the password, or with
/// `--password-stdin` sets the password read from standard input.
pub async fn create_user(
    d: &dyn Directory,
    public_url: &str,
    account: Option<&str>,
    email: &str,
    role: &str,
    name: Option<&str>,
    password_stdin: bool,
) -> Result<(), String> {
    let email =
        auth::normalize_email(email).ok_or_else(|| format!("`{email}` is not an email address"))?;
    let role = Role::parse(role).ok_or("--role must be admin, supervisor or agent")?;
    let account = pick_account(d, account, "default").await?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| email.split('@').next().unwrap_or("admin").to_string());
    let password_hash = if password_stdin {
        let mut password = String::new();
        std::io::stdin()
            .read_to_string(&mut password)
            .map_err(err)?;
        let password = password.trim_end_matches(['\n', '\r']);
        if let Some(problem) = auth::password_problem(password, &email) {
            return Err(format!("password refused: {problem}"));
        }
        Some(auth::hash_password(password)?)
    } else {
        None
    };
    let mut username: String = email
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(24)
        .collect::<String>()
        .to_ascii_lowercase();
    if username.len() < 2 {
        username = "admin".into();
    }
    let mut user = UserRecord {
        id: format!("u_{}", auth::random_secret(8)),
        account_id: account,
        email: email.clone(),
        username: username.clone(),
        nickname: name.split_whitespace().next().unwrap_or(&name).to_string(),
        name,
        role,
        password_hash,
        disabled: false,
        created_at: now(),
    };
    for n in 1..100 {
        match d.create_user(&user).await {
            Ok(()) => break,
            Err(CreateUserError::UsernameTaken) => user.username = format!("{username}{n}"),
            Err(CreateUserError::EmailTaken) => {
                return Err(format!("a user with the email {email} exists already"))
            }
            Err(CreateUserError::Store(e)) => return Err(e.to_string()),
        }
    }
    println!("user: {} ({}, {})", user.email, user.id, role.as_str());
    if user.password_hash.is_none() {
        let token = auth::random_secret(32);
        let expires = crate::clock::now()
            .plus_seconds(auth::INVITE_SECONDS)
            .to_iso8601();
        d.create_token(
            &auth::hash_secret(&token),
            &user.id,
            TokenKind::Invite,
            &expires,
        )
        .await
        .map_err(err)?;
        println!("set the password here (valid 7 days, once): {public_url}/agent/#/invite/{token}");
    }
    Ok(())
}

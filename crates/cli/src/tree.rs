//! The namespace tree, built only from the API's introspection
//! (`core.get_services` and `core.get_methods`, SPEC §4.1, §5.6): a service's
//! `cli_namespace` (`auth.two_factor`) is the path, a method's command name
//! the last part of its name. Intermediate namespaces exist implicitly.

use serde_json::Value;

use crate::schema;
use crate::suggest;

/// One command: an API method as the CLI shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    /// The API method (`auth.twofactor.update`).
    pub method: String,
    /// The service it belongs to (`auth.twofactor`).
    pub service: String,
    /// The service is a `config` service (one entry; `update` edits it).
    pub config_service: bool,
    /// The namespace path (`["auth", "two_factor"]`).
    pub path: Vec<String>,
    pub summary: String,
    pub description: String,
    pub examples: Vec<String>,
    /// One JSON schema per positional parameter.
    pub accepts: Vec<Value>,
    pub returns: Option<Value>,
}

impl Command {
    /// `auth two_factor update`.
    pub fn full_name(&self) -> String {
        let mut parts = self.path.clone();
        parts.push(self.name.clone());
        parts.join(" ")
    }

    /// When the method takes one object, `name=value` pairs are that
    /// object's properties (a config service's `update`, `audit query`).
    pub fn object_param(&self) -> Option<&Value> {
        match self.accepts.as_slice() {
            [only] if schema::properties(only).is_some() => Some(only),
            _ => None,
        }
    }

    /// The argument names completion and suggestions offer, with schemas.
    pub fn argument_names(&self) -> Vec<(&str, &Value)> {
        match self.object_param() {
            Some(object) => schema::properties(object)
                .map(|p| p.iter().map(|(k, v)| (k.as_str(), v)).collect())
                .unwrap_or_default(),
            None => self
                .accepts
                .iter()
                .filter_map(|s| Some((schema::name(s)?, s)))
                .collect(),
        }
    }

    /// Whether the result is text (then `--qr`, `--png`, `--svg` apply).
    pub fn returns_text(&self) -> bool {
        self.returns
            .as_ref()
            .is_some_and(|r| schema::types(r) == ["string"])
    }
}

/// A namespace: child namespaces and commands, both sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Namespace {
    pub name: String,
    pub description: String,
    pub children: Vec<Namespace>,
    pub commands: Vec<Command>,
}

impl Namespace {
    pub fn child(&self, name: &str) -> Option<&Namespace> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn command(&self, name: &str) -> Option<&Command> {
        self.commands.iter().find(|c| c.name == name)
    }

    /// Names of the children and commands, for suggestions and completion.
    pub fn entry_names(&self) -> impl Iterator<Item = &str> {
        self.children
            .iter()
            .map(|c| c.name.as_str())
            .chain(self.commands.iter().map(|c| c.name.as_str()))
    }

    fn child_mut(&mut self, name: &str) -> &mut Namespace {
        let i = match self.children.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.children.push(Namespace {
                    name: name.to_owned(),
                    ..Namespace::default()
                });
                self.children.len() - 1
            }
        };
        &mut self.children[i]
    }

    /// Drops namespaces with no command anywhere below them (a service
    /// whose methods are all kept out of the CLI), as midcli, which builds
    /// its namespaces from the methods, never shows them.
    fn prune(&mut self) {
        for c in &mut self.children {
            c.prune();
        }
        self.children
            .retain(|c| !c.commands.is_empty() || !c.children.is_empty());
    }

    fn sort(&mut self) {
        self.children.sort_by(|a, b| a.name.cmp(&b.name));
        self.commands.sort_by(|a, b| a.name.cmp(&b.name));
        for c in &mut self.children {
            c.sort();
        }
    }
}

/// What a list of words names, starting from a namespace.
#[derive(Debug, PartialEq)]
pub enum Resolved<'t> {
    /// A namespace (its full path).
    Namespace(Vec<String>),
    /// A command, and how many words named it (the rest are arguments).
    Command(&'t Command, usize),
    /// `word` is neither a namespace nor a command in the namespace at `path`.
    NotFound {
        word: String,
        path: Vec<String>,
        suggestion: Option<String>,
    },
}

/// The whole tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tree {
    pub root: Namespace,
}

struct ServiceInfo<'a> {
    name: &'a str,
    path: Vec<String>,
    config: bool,
}

/// The CLI services of `core.get_services`: name, namespace path, and
/// whether it is a `config` service. Services kept out of the CLI are left
/// out.
fn cli_services(services: &Value) -> impl Iterator<Item = (&str, &Value, Vec<String>)> {
    services
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, service)| {
            let config = &service["config"];
            let hidden = config
                .get("cli_private")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let ns = config.get("cli_namespace").and_then(Value::as_str)?;
            if hidden || ns.is_empty() {
                return None;
            }
            let path: Vec<String> = ns.split('.').map(str::to_owned).collect();
            Some((name.as_str(), service, path))
        })
}

/// Whether `path` is (the start of) some service's CLI namespace: a path
/// that is in the API even when the tree of this session lacks it
/// (its methods are not for this user).
pub fn is_service_path(services: &Value, path: &[String]) -> bool {
    cli_services(services).any(|(_, _, ns)| ns.starts_with(path))
}

/// The services a command typed as `words` can belong to: those whose
/// namespace is the longest one that `words` start with. A command named by
/// `words` is always in that namespace, since a namespace's name wins over
/// a command's while resolving (see [`Tree::resolve`]).
pub fn services_for(services: &Value, words: &[String]) -> Vec<String> {
    let (names, _) = deepest_on_path(services, words);
    names.into_iter().map(str::to_owned).collect()
}

/// The services whose namespace path starts `words` and is the longest
/// such, and that path's length.
fn deepest_on_path<'s>(services: &'s Value, words: &[String]) -> (Vec<&'s str>, usize) {
    let on_path: Vec<(&str, usize)> = cli_services(services)
        .filter(|(_, _, path)| words.starts_with(path))
        .map(|(name, _, path)| (name, path.len()))
        .collect();
    let deepest = on_path.iter().map(|(_, depth)| *depth).max().unwrap_or(0);
    let names = on_path
        .into_iter()
        .filter(|(_, depth)| *depth == deepest)
        .map(|(name, _)| name)
        .collect();
    (names, deepest)
}

/// The methods a command typed as `words` most likely is, by name: the
/// word after the namespace of each of its [`services_for`] names a method
/// of that service (`auth two_factor config` is `auth.twofactor.config`).
/// `(service, method)` pairs; a guess still has to be described and
/// resolved.
pub fn method_guesses(services: &Value, words: &[String]) -> Vec<(String, String)> {
    let (names, depth) = deepest_on_path(services, words);
    let Some(word) = words.get(depth) else {
        return Vec::new();
    };
    names
        .into_iter()
        .map(|name| (name.to_owned(), format!("{name}.{word}")))
        .collect()
}

impl Tree {
    /// Builds the tree from `core.get_services` and `core.get_methods`.
    pub fn from_introspection(services: &Value, methods: Value) -> Self {
        let mut tree = Self::unpruned(services, methods);
        tree.root.prune();
        tree
    }

    /// A tree from every service but the methods of only some of them: its
    /// namespaces are not pruned (a namespace without loaded methods may
    /// hold commands). A command it resolves `words` to is the one the
    /// whole tree resolves them to when `methods` holds every method of the
    /// [`services_for`] those words; anything else must be resolved on the
    /// whole tree.
    pub fn partial(services: &Value, methods: Value) -> Self {
        Self::unpruned(services, methods)
    }

    /// Takes `methods` by value: the schemas are moved into the commands.
    fn unpruned(services: &Value, methods: Value) -> Self {
        let mut tree = Tree::default();
        let mut infos: Vec<ServiceInfo<'_>> = Vec::new();
        for (name, service, path) in cli_services(services) {
            let config = &service["config"];
            let description = config
                .get("cli_description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let node = tree.namespace_mut(&path);
            if node.description.is_empty() {
                node.description = description.to_owned();
            }
            let config_service = service.get("type").and_then(Value::as_str) == Some("config");
            infos.push(ServiceInfo {
                name,
                path,
                config: config_service,
            });
        }
        let Value::Object(methods) = methods else {
            return tree;
        };
        for (method, mut desc) in methods {
            if desc
                .get("cli_private")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                continue;
            }
            // A method belongs to the service with the longest name prefixing it.
            let Some(service) = client::wire::service_of(&method, &infos, |s| s.name) else {
                continue;
            };
            let name = method.rsplit('.').next().unwrap_or(&method).to_owned();
            let accepts = match desc.get_mut("accepts").map(Value::take) {
                Some(Value::Array(accepts)) => accepts,
                _ => Vec::new(),
            };
            let returns = desc.pointer_mut("/returns/0").map(Value::take);
            let text = |key: &str| {
                desc.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let command = Command {
                name,
                method,
                service: service.name.to_owned(),
                config_service: service.config,
                path: service.path.clone(),
                summary: text("cli_description"),
                description: text("description"),
                examples: desc
                    .pointer("/examples/cli")
                    .and_then(Value::as_array)
                    .map(|e| {
                        // TrueNAS ends each example with a newline.
                        e.iter()
                            .filter_map(Value::as_str)
                            .map(|e| e.trim_end_matches('\n').to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
                accepts,
                returns,
            };
            tree.namespace_mut(&service.path).commands.push(command);
        }
        tree.root.sort();
        tree
    }

    fn namespace_mut(&mut self, path: &[String]) -> &mut Namespace {
        path.iter()
            .fold(&mut self.root, |node, part| node.child_mut(part))
    }

    /// The namespace at `path`.
    pub fn namespace(&self, path: &[String]) -> Option<&Namespace> {
        path.iter()
            .try_fold(&self.root, |node, part| node.child(part))
    }

    /// The command `words` resolve to (see [`Tree::resolve`]), taken out of
    /// the tree instead of copied, and how many words named it: for a tree
    /// built for one lookup.
    pub fn into_command(mut self, cwd: &[String], words: &[String]) -> Option<(Command, usize)> {
        let (path, name, n) = match self.resolve(cwd, words) {
            Resolved::Command(c, n) => (c.path.clone(), c.name.clone(), n),
            _ => return None,
        };
        let commands = &mut self.namespace_mut(&path).commands;
        let at = commands.iter().position(|c| c.name == name)?;
        Some((commands.swap_remove(at), n))
    }

    /// Every command, depth first.
    pub fn commands(&self) -> Vec<&Command> {
        fn walk<'a>(ns: &'a Namespace, out: &mut Vec<&'a Command>) {
            out.extend(ns.commands.iter());
            for c in &ns.children {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// Resolves `words` from the namespace `cwd`: namespaces are entered
    /// until a command is found. When the first word names nothing at `cwd`,
    /// it is tried from the root (a full path typed anywhere).
    pub fn resolve<'t>(&'t self, cwd: &[String], words: &[String]) -> Resolved<'t> {
        let here = self.resolve_from(cwd, words);
        let resolved = match &here {
            Resolved::NotFound { path, .. } if path.as_slice() == cwd && !cwd.is_empty() => {
                match self.resolve_from(&[], words) {
                    found @ (Resolved::Command(..) | Resolved::Namespace(_)) => found,
                    Resolved::NotFound { path, .. } if path.is_empty() => here,
                    deeper => deeper,
                }
            }
            _ => here,
        };
        match resolved {
            // Nothing near here: a command of that name elsewhere, by its
            // full path (`update` typed at the root).
            Resolved::NotFound {
                word,
                path,
                suggestion: None,
            } => {
                let suggestion = self.elsewhere(&word);
                Resolved::NotFound {
                    word,
                    path,
                    suggestion,
                }
            }
            other => other,
        }
    }

    /// The full path of the command named (or nearly named) `word`.
    fn elsewhere(&self, word: &str) -> Option<String> {
        let commands = self.commands();
        let exact = commands.iter().find(|c| c.name == word);
        let near = || {
            let name = suggest::nearest(word, commands.iter().map(|c| c.name.as_str()))?;
            commands.iter().find(|c| c.name == name)
        };
        exact.or_else(near).map(|c| c.full_name())
    }

    fn resolve_from<'t>(&'t self, start: &[String], words: &[String]) -> Resolved<'t> {
        let mut path = start.to_vec();
        let Some(mut node) = self.namespace(start) else {
            return Resolved::NotFound {
                word: start.join(" "),
                path: Vec::new(),
                suggestion: None,
            };
        };
        for (i, word) in words.iter().enumerate() {
            if let Some(child) = node.child(word) {
                node = child;
                path.push(word.clone());
            } else if let Some(cmd) = node.command(word) {
                return Resolved::Command(cmd, i + 1);
            } else {
                let suggestion = suggest::nearest(word, node.entry_names()).map(str::to_owned);
                return Resolved::NotFound {
                    word: word.clone(),
                    path,
                    suggestion,
                };
            }
        }
        Resolved::Namespace(path)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Introspection shaped like the API's.
    pub(crate) fn sample() -> Tree {
        let services = json!({
            "core": {"type": "service", "config": {"cli_namespace": null, "cli_description": "x"}},
            "auth": {"type": "service", "config": {"cli_namespace": "auth", "cli_description": "Authentication"}},
            "auth.twofactor": {"type": "config", "config": {"cli_namespace": "auth.two_factor",
                "cli_description": "Two-factor authentication"}},
            "system": {"type": "service", "config": {"cli_namespace": "system", "cli_description": "S"}},
            "user": {"type": "service", "config": {"cli_namespace": "account.user", "cli_description": "U"}},
        });
        let update = json!({"type": "object", "title": "auth_twofactor_update", "_name_": "auth_twofactor_update",
            "additionalProperties": false, "_required_": true, "required": [],
            "properties": {
                "enabled": {"type": "boolean", "title": "enabled"},
                "otp_digits": {"type": "integer", "minimum": 6, "maximum": 8, "default": 6},
                "services": {"type": "object", "properties": {"ssh": {"type": "boolean"}},
                             "additionalProperties": false}}});
        let methods = json!({
            "core.ping": {"cli_private": true, "accepts": []},
            "system.hostname": {"cli_private": true, "accepts": []},
            "user.has_local_administrator_set_up": {"cli_private": true, "accepts": []},
            "auth.login": {"cli_private": true, "accepts": []},
            "auth.twofactor.config": {"cli_description": "Show the 2FA settings", "description": "Shows.",
                "examples": {"cli": ["auth two_factor config\n", "auth two_factor config -m csv\n"]}, "accepts": [],
                "returns": [{"type": "object"}]},
            "auth.twofactor.update": {"cli_description": "Change", "description": "Changes.",
                "accepts": [update], "returns": [{"type": "object"}]},
            "auth.twofactor.verify": {"cli_description": "Check a code", "accepts": [
                {"type": ["string", "null"], "_name_": "token", "title": "token", "_required_": true}],
                "returns": [{"type": "boolean"}]},
            "auth.twofactor.provisioning_uri": {"accepts": [], "returns": [{"type": "string"}]},
        });
        Tree::from_introspection(&services, methods)
    }

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn builds_namespaces_from_introspection() {
        let t = sample();
        // core has no CLI namespace; system and account hold no CLI command.
        let top: Vec<&str> = t.root.entry_names().collect();
        assert_eq!(top, ["auth"]);
        let auth = t.root.child("auth").unwrap();
        assert_eq!(auth.description, "Authentication");
        assert!(auth.commands.is_empty(), "cli_private methods are hidden");
        let tf = auth.child("two_factor").unwrap();
        let names: Vec<&str> = tf.commands.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["config", "provisioning_uri", "update", "verify"]);
        assert_eq!(
            tf.command("config").unwrap().examples,
            ["auth two_factor config", "auth two_factor config -m csv"]
        );
        let update = tf.command("update").unwrap();
        assert!(update.config_service);
        assert_eq!(update.full_name(), "auth two_factor update");
        assert!(update.object_param().is_some());
        let names: Vec<&str> = update
            .argument_names()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["enabled", "otp_digits", "services"]);
        let verify = tf.command("verify").unwrap();
        assert!(verify.object_param().is_none());
        assert_eq!(verify.argument_names()[0].0, "token");
        assert!(tf.command("provisioning_uri").unwrap().returns_text());
    }

    #[test]
    fn resolves_paths() {
        let t = sample();
        match t.resolve(&[], &w("auth two_factor config x")) {
            Resolved::Command(c, n) => {
                assert_eq!((c.method.as_str(), n), ("auth.twofactor.config", 3))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.resolve(&[], &w("auth")), Resolved::Namespace(w("auth")));
        let inside = w("auth two_factor");
        assert!(matches!(
            t.resolve(&inside, &w("config")),
            Resolved::Command(..)
        ));
        // A full path typed inside a namespace.
        assert!(matches!(
            t.resolve(&inside, &w("auth two_factor verify")),
            Resolved::Command(..)
        ));
        assert_eq!(
            t.resolve(&inside, &w("uodate")),
            Resolved::NotFound {
                word: "uodate".into(),
                path: inside.clone(),
                suggestion: Some("update".into())
            }
        );
        assert_eq!(
            t.resolve(&[], &w("uodate")),
            Resolved::NotFound {
                word: "uodate".into(),
                path: vec![],
                suggestion: Some("auth two_factor update".into())
            }
        );
        assert_eq!(
            t.resolve(&[], &w("auth two_factr")),
            Resolved::NotFound {
                word: "two_factr".into(),
                path: w("auth"),
                suggestion: Some("two_factor".into())
            }
        );
    }
}

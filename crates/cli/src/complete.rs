//! Shell completion for bash, zsh and fish from the same description as
//! the interactive shell's: the generated scripts call the hidden
//! `tfa --complete-words WORDS...` (the command line up to the cursor; the
//! last word is the one being completed, empty after a space), which
//! answers the candidates one per line.
//!
//! The namespace tree comes from an API described in-process on a
//! throw-away state, so completing never touches a state, never waits on a
//! daemon and never prompts.

use clap::CommandFactory;

use crate::backend;
use crate::error::CliError;
use crate::exec::Engine;
use crate::render::Mode;
use crate::shell::ShellHelper;

/// The global options that take a value (the value is skipped too).
fn takes_value(option: &str) -> bool {
    let cmd = crate::Args::command();
    let name = option.split_once('=').map_or(option, |(n, _)| n);
    if option.contains('=') {
        return false;
    }
    cmd.get_arguments().any(|a| {
        let matches = name
            .strip_prefix("--")
            .map(|l| a.get_long() == Some(l))
            .or_else(|| {
                name.strip_prefix('-')
                    .and_then(|s| s.chars().next())
                    .map(|c| a.get_short() == Some(c))
            })
            .unwrap_or(false);
        matches && a.get_action().takes_values()
    })
}

/// The candidates for the last of `words` (what follows `tfa` on the
/// command line, up to the cursor).
pub fn candidates(words: &[String]) -> Result<Vec<String>, CliError> {
    // One string, as a shell may hand the whole line over as one word.
    let line = words.join(" ");
    let mut words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
    if line.is_empty() || line.ends_with(' ') {
        words.push("");
    }
    let Some((current, before)) = words.split_last() else {
        return Ok(Vec::new());
    };
    // Global options before the command.
    let mut i = 0;
    while i < before.len() && before[i].starts_with('-') {
        i += usize::from(takes_value(before[i])) + 1;
    }
    if i > before.len() {
        // The current word is an option's value.
        let option = before.last().copied().unwrap_or_default();
        return Ok(option_values(option, current));
    }
    let command = &before[i..];
    if command.is_empty() && current.starts_with('-') {
        let mut names: Vec<String> = crate::Args::command()
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .chain(["--help".to_owned(), "--version".to_owned()])
            .filter(|n| n.starts_with(current))
            .collect();
        names.sort();
        return Ok(names);
    }
    let helper = ShellHelper {
        tree: Some(described_tree()?),
        cwd: Vec::new(),
    };
    let mut line = command.join(" ");
    if !line.is_empty() {
        line.push(' ');
    }
    line.push_str(current);
    let (_, pairs) = helper.candidates(&line, line.len());
    Ok(pairs
        .into_iter()
        .map(|p| p.replacement.trim_end().to_owned())
        .collect())
}

/// The whole namespace tree as an administrator sees it, described by the
/// API in-process (for completion and the manual page).
pub fn described_tree() -> Result<crate::tree::Tree, CliError> {
    let (backend, _state) = backend::description_only()?;
    let mut engine = Engine::new(backend, Mode::Table);
    Ok(engine.tree()?.clone())
}

/// Values of a global option (`-m`'s formats); nothing for free text.
fn option_values(option: &str, current: &str) -> Vec<String> {
    if option == "-m" || option == "--mode" {
        return ["table", "csv", "json"]
            .iter()
            .filter(|m| m.starts_with(current))
            .map(|m| (*m).to_owned())
            .collect();
    }
    Vec::new()
}

/// The bash completion script: `tfa --complete-words` for the line up to
/// the cursor. bash splits words at `=`; the part of our word before the
/// word bash completes is taken off each candidate.
pub const BASH: &str = r#"# bash completion for tfa (generated; candidates come from tfa itself)
_tfa() {
    local line="${COMP_LINE:0:COMP_POINT}"
    local rest="${line#*[[:space:]]}"
    [[ "$rest" == "$line" ]] && rest=""
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local word="${line##*[[:space:]]}"
    [[ "$cur" == "=" ]] && cur=""
    local strip="${word%"$cur"}"
    local c
    COMPREPLY=()
    while IFS= read -r c; do
        [[ -n "$c" ]] || continue
        [[ "$c" == "$strip"* ]] || continue
        COMPREPLY+=("${c#"$strip"}")
    done < <("${COMP_WORDS[0]}" --complete-words -- "$rest" 2>/dev/null)
    if [[ ${#COMPREPLY[@]} -eq 1 && "${COMPREPLY[0]}" == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
complete -F _tfa tfa
"#;

/// The zsh completion script.
pub const ZSH: &str = r#"#compdef tfa
# zsh completion for tfa (generated; candidates come from tfa itself)
_tfa() {
    local line="${(j: :)words[2,CURRENT]}"
    local -a found spaced open
    found=("${(@f)$(${words[1]} --complete-words -- "$line" 2>/dev/null)}")
    local c
    for c in $found; do
        [[ -n "$c" ]] || continue
        if [[ "$c" == *= ]]; then open+=("$c"); else spaced+=("$c"); fi
    done
    (( ${#spaced} )) && compadd -Q -- $spaced
    (( ${#open} )) && compadd -Q -S '' -- $open
    return 0
}
_tfa "$@"
"#;

/// The fish completion script.
pub const FISH: &str = r#"# fish completion for tfa (generated; candidates come from tfa itself)
function __tfa_complete
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l current (commandline -ct)
    tfa --complete-words -- (string join ' ' -- $tokens "$current") 2>/dev/null
end
complete -c tfa -f -a '(__tfa_complete)'
"#;

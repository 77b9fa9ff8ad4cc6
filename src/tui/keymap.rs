//! The key table: one list drives both dispatch and the help view, so they cannot disagree.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Runs,
    Run,
    Compare,
    Matrix,
    New,
    Queue,
}

impl Scope {
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "everywhere",
            Scope::Runs => "runs",
            Scope::Run => "run",
            Scope::Compare => "compare",
            Scope::Matrix => "matrix",
            Scope::New => "new experiment",
            Scope::Queue => "queue",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Suspend,
    Help,
    ViewRuns,
    ViewRun,
    ViewCompare,
    ViewMatrix,
    ViewNew,
    ViewQueue,
    Collect,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextPane,
    PrevPane,
    Open,
    Back,
    Filter,
    ClearFilter,
    Select,
    SortNext,
    SortReverse,
    CompareSelected,
    LogY,
    XAxis,
    SmoothMore,
    SmoothLess,
    EditNote,
    EditTags,
    CancelRun,
    Launch,
    LoadFile,
    SaveForm,
    ToggleMouse,
}

/// A key as written in the table and the help.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: false }
}
const fn ctrl(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: true }
}
const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
}

use Action::*;
use Scope::*;

pub const BINDINGS: &[Binding] = &[
    Binding { scope: Global, keys: &[k('q')], action: Quit, help: "quit (asks when runs are alive)" },
    Binding { scope: Global, keys: &[ctrl('c')], action: Quit, help: "quit" },
    Binding { scope: Global, keys: &[ctrl('z')], action: Suspend, help: "suspend to the shell" },
    Binding { scope: Global, keys: &[k('?')], action: Help, help: "this help" },
    Binding { scope: Global, keys: &[k('1')], action: ViewRuns, help: "runs" },
    Binding { scope: Global, keys: &[k('2')], action: ViewRun, help: "run (the one under the cursor)" },
    Binding { scope: Global, keys: &[k('3')], action: ViewCompare, help: "compare the selected runs" },
    Binding { scope: Global, keys: &[k('4')], action: ViewMatrix, help: "task x architecture matrix" },
    Binding { scope: Global, keys: &[k('5')], action: ViewNew, help: "new experiment" },
    Binding { scope: Global, keys: &[k('6')], action: ViewQueue, help: "queue and devices" },
    Binding { scope: Global, keys: &[code(KeyCode::Up), k('k')], action: Up, help: "up" },
    Binding { scope: Global, keys: &[code(KeyCode::Down), k('j')], action: Down, help: "down" },
    Binding { scope: Global, keys: &[code(KeyCode::Left), k('h')], action: Left, help: "left / previous choice" },
    Binding { scope: Global, keys: &[code(KeyCode::Right), k('l')], action: Right, help: "right / next choice" },
    Binding { scope: Global, keys: &[code(KeyCode::PageUp), ctrl('u')], action: PageUp, help: "page up" },
    Binding { scope: Global, keys: &[code(KeyCode::PageDown), ctrl('d')], action: PageDown, help: "page down" },
    Binding { scope: Global, keys: &[code(KeyCode::Home), k('g')], action: Top, help: "first" },
    Binding { scope: Global, keys: &[code(KeyCode::End), k('G')], action: Bottom, help: "last" },
    Binding { scope: Global, keys: &[code(KeyCode::Tab)], action: NextPane, help: "next pane" },
    Binding { scope: Global, keys: &[code(KeyCode::BackTab)], action: PrevPane, help: "previous pane" },
    Binding { scope: Global, keys: &[code(KeyCode::Esc)], action: Back, help: "back / close" },
    Binding { scope: Global, keys: &[k('M')], action: ToggleMouse, help: "mouse capture on/off" },
    Binding { scope: Runs, keys: &[code(KeyCode::Enter)], action: Open, help: "open the run" },
    Binding { scope: Runs, keys: &[k('/')], action: Filter, help: "filter: task: arch: status: tag: seed: words" },
    Binding { scope: Runs, keys: &[k('\\')], action: ClearFilter, help: "clear the filter" },
    Binding { scope: Runs, keys: &[k(' ')], action: Select, help: "select for comparison" },
    Binding { scope: Runs, keys: &[k('s')], action: SortNext, help: "sort by the next column" },
    Binding { scope: Runs, keys: &[k('S')], action: SortReverse, help: "reverse the order" },
    Binding { scope: Runs, keys: &[k('c')], action: CompareSelected, help: "compare the selected runs" },
    Binding { scope: Runs, keys: &[k('x')], action: CancelRun, help: "cancel the run (asks)" },
    Binding { scope: Run, keys: &[k('L')], action: LogY, help: "loss chart: log / linear y" },
    Binding { scope: Run, keys: &[k('w')], action: XAxis, help: "loss chart: x = step / wall time" },
    Binding { scope: Run, keys: &[k('+'), k('=')], action: SmoothMore, help: "more smoothing" },
    Binding { scope: Run, keys: &[k('-')], action: SmoothLess, help: "less smoothing" },
    Binding { scope: Run, keys: &[k('n')], action: EditNote, help: "edit the note" },
    Binding { scope: Run, keys: &[k('t')], action: EditTags, help: "edit the tags" },
    Binding { scope: Run, keys: &[k('x')], action: CancelRun, help: "cancel the run (asks)" },
    Binding { scope: Compare, keys: &[k('L')], action: LogY, help: "log / linear y" },
    Binding { scope: Compare, keys: &[k('+'), k('=')], action: SmoothMore, help: "more smoothing" },
    Binding { scope: Compare, keys: &[k('-')], action: SmoothLess, help: "less smoothing" },
    Binding { scope: Matrix, keys: &[code(KeyCode::Enter)], action: Open, help: "open the cell's run" },
    Binding { scope: New, keys: &[code(KeyCode::Enter)], action: Open, help: "edit the field / toggle" },
    Binding { scope: New, keys: &[ctrl('l')], action: LoadFile, help: "load an experiment file" },
    Binding { scope: New, keys: &[ctrl('s')], action: SaveForm, help: "save the form as TOML" },
    Binding { scope: New, keys: &[ctrl('r')], action: Launch, help: "launch: one run per arch x seed" },
    Binding { scope: Queue, keys: &[k('x')], action: CancelRun, help: "cancel the job (asks)" },
    Binding { scope: Queue, keys: &[code(KeyCode::Enter)], action: Open, help: "open the run" },
    Binding { scope: Queue, keys: &[k('c')], action: Collect, help: "collect (import) the bundles of the Slurm array" },
];

fn matches(key: &Key, ev: &KeyEvent) -> bool {
    let ctrl_down = ev.modifiers.contains(KeyModifiers::CONTROL);
    match (key.code, ev.code) {
        (KeyCode::Char(a), KeyCode::Char(b)) => a == b && key.ctrl == ctrl_down,
        (a, b) => a == b && key.ctrl == ctrl_down,
    }
}

/// The action of `ev` in `scope`: the view's own binding first, then the global one.
pub fn lookup(scope: Scope, ev: &KeyEvent) -> Option<Action> {
    let find = |s: Scope| BINDINGS.iter().find(|b| b.scope == s && b.keys.iter().any(|k| matches(k, ev)));
    find(scope).or_else(|| find(Global)).map(|b| b.action)
}

pub fn key_name(k: &Key) -> String {
    let base = match k.code {
        KeyCode::Char(' ') => "space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "Shift-Tab".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Enter => "Enter".into(),
        other => format!("{other:?}"),
    };
    if k.ctrl {
        format!("Ctrl-{base}")
    } else {
        base
    }
}

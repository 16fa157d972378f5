"""The Gradio app: `talkface.app.ui` (layout and events), `state` (the shared Scorer and jobs),
`views` (what each tab shows), `jobs` (background training). Importing this package does not
import Gradio; `talkface.app.ui` does."""

"""talkface's web app from a checkout: `python app.py [--host 127.0.0.1] [--port 7860]`.

The app lives in the package (`talkface.app`), so an installed talkface serves it too, as
`talkface app`. This file only starts it.
"""
from talkface.app.ui import main

if __name__ == "__main__":
    main()

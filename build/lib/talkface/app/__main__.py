"""`python -m talkface.app [--host ...] [--port ...]`"""
from .ui import main

main()

"""talkface: no-reference quality assessment of AI-generated talking-face videos.

media -> features -> FeatureSpec -> model -> checkpoint -> Scorer -> app / CLI.
"""
__version__ = "0.1.0"

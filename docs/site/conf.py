# Sphinx settings for the rendered lessons (`make site`, tools/build_site.py): MyST-NB shows the executed copies
# (build/executed/) as they are, never executing; MathJax is served from the site, so pages need no network.
project = "searchr1_lite: the lessons"
author = "searchr1_lite"
extensions = ["myst_nb"]
exclude_patterns = ["**.ipynb_checkpoints"]

nb_execution_mode = "off"  # the copies were executed once by `make test` or `make site`
nb_merge_streams = True  # one stdout block a cell, not one per print
myst_enable_extensions = ["dollarmath", "amsmath"]
# no ipywidgets, whose JavaScript would come from a CDN (tools/build_site.py drops the progress bars already)
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js = {}

# MathJax 2.7 as jupyter-server-mathjax ships it, copied into _static/mathjax by tools/build_site.py
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
myst_update_mathjax = False  # its settings are MathJax 3's
mathjax2_config = {"HTML-CSS": {"webFont": "STIX-Web", "availableFonts": [], "imageFont": None,  # the fonts it ships
                                "linebreaks": {"automatic": True}}}  # a long formula wraps, not cut off

html_theme = "sphinx_book_theme"
html_title = "searchr1_lite: the lessons"
html_static_path = ["_static"]
html_theme_options = {
    "use_download_button": True,  # each lesson's executed .ipynb
    "use_fullscreen_button": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False

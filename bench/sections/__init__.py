"""Optional suite sections, registered (`bench.sections.registry`): the DIP protocol (`bench.dip.section`),
cross-checks (`bench.crosscheck.section`), minimum-norm security-evaluation curves
(`bench.sections.security_curves`) and randomized smoothing's certificates (`bench.smoothing.section`), and a
suite's plug-in sections (its `sections:` list). Importing this package registers the built-in ones: each is
its own files plus one line here."""

from bench.crosscheck import section as _crosscheck_section  # noqa: F401  (registers the section)
from bench.dip import section as _dip_section  # noqa: F401  (registers the section)
from bench.sections import security_curves as _security_curves  # noqa: F401  (registers the section)
from bench.sections.registry import (
    Section,
    add_section_cells,
    builtin_sections,
    deferred,
    load_plugin_section,
    register_section,
    section_of,
    sections,
)
from bench.smoothing import section as _smoothing_section  # noqa: F401  (registers the section)

__all__ = ["Section", "add_section_cells", "builtin_sections", "deferred", "load_plugin_section",
           "register_section", "section_of", "sections"]

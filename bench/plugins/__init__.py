"""The plug-in contracts: the one loader of user code (`loader`: `file.py:Name` or `module:Name`), the one registry
pattern (`registry`) and what every plug-in that returns images must return (`image_contract`)."""

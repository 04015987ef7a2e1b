"""The trader's pages, a module per page area. Views are thin: they fetch through `owned` (another user's id is a
404), read through querysets, validate with a form, and write through services."""

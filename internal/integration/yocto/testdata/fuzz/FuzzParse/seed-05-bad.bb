go test fuzz v1
[]byte("A = \"${B\nfrobnicate\ndo_x() {\n\techo \"a\n\tcat <<-EOF\n\tit's\n\tEOF\n}\npython () {\n    if a:\n    b\n}\ndef f(d):\n    return (1,\n")

package outside

// At the root, even a bare parent climbs out.
var up = ".."

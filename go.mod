module scaleout

go 1.26

module go-webapp

go 1.22

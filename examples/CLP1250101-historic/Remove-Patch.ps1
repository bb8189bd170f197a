# Takes back historic patch CLP1250101: removes the marker Install-Patch.ps1 wrote.
$ErrorActionPreference = 'Stop'
$root = if ($env:CLP_ROOT) { $env:CLP_ROOT } else { '/' }
$marker = Join-Path $root 'var/lib/clp-historic/CLP1250101.installed'
if (Test-Path $marker) { Remove-Item -Force $marker }
Write-Output "CLP1250101 removed"
